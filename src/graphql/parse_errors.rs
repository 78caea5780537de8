//! Parse errors a person can read: async-graphql's parser reports a syntax
//! error as pest's diagram (` --> 1:11`, a caret under the text, rule names
//! such as `selection_set` or `EOI`). A client shows `message` to a
//! developer, and `locations` already says where, so the message becomes one
//! sentence: "Syntax error at line 1, column 11: expected a selection set,
//! a selection, a directive or arguments."

use async_graphql::{parser, ServerError};

/// The error a document that does not parse gets (its code is set by the
/// caller).
pub fn server_error(err: parser::Error) -> ServerError {
    match err {
        parser::Error::Syntax { message, start, .. } => ServerError::new(
            format!(
                "Syntax error at line {}, column {}: {}.",
                start.line,
                start.column,
                sentence(&message)
            ),
            Some(start),
        ),
        other => {
            // The others (no operation, a duplicated name, …) are already
            // words: made a sentence like the syntax errors.
            let mut err: ServerError = other.into();
            let mut chars = err.message.chars();
            if let Some(first) = chars.next() {
                err.message = format!("{}{}", first.to_uppercase(), chars.as_str());
            }
            if !err.message.ends_with('.') {
                err.message.push('.');
            }
            err
        }
    }
}

/// The reason in pest's diagram (its `= …` line), in words.
fn sentence(diagram: &str) -> String {
    let reason = diagram
        .lines()
        .rev()
        .find_map(|line| line.trim_start().strip_prefix("= "))
        .unwrap_or("the document is not valid GraphQL")
        .trim()
        .trim_end_matches('.');
    // pest writes "expected a, b, or c" / "unexpected a; expected b": the
    // words stay, the rule names become names of things.
    reason
        .split_inclusive([',', ' ', ';'])
        .map(|piece| {
            let word = piece.trim_end_matches([',', ' ', ';']);
            let rest = &piece[word.len()..];
            format!("{}{rest}", thing(word))
        })
        .collect::<String>()
        .replace(", or ", " or ")
}

fn thing(rule: &str) -> String {
    match rule {
        "EOI" => "the end of the document".into(),
        "executable_definition" => "an operation or a fragment".into(),
        "selection_set" => "a selection set".into(),
        "selection" => "a selection".into(),
        "directive" | "directives" => "a directive".into(),
        "arguments" => "arguments".into(),
        "value" | "const_value" => "a value".into(),
        "name" => "a name".into(),
        "variable" => "a variable".into(),
        "type_" | "type" => "a type".into(),
        word if word.contains('_') => word.replace('_', " "),
        word => word.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        match parser::parse_query(text) {
            Ok(_) => panic!("{text} parsed"),
            Err(err) => server_error(err).message,
        }
    }

    #[test]
    fn a_syntax_error_is_one_sentence_with_its_place() {
        assert_eq!(
            message("{ me { id "),
            "Syntax error at line 1, column 11: expected a selection set, a selection, \
             a directive or arguments."
        );
        assert_eq!(
            message("{ me { id } } }"),
            "Syntax error at line 1, column 15: expected the end of the document or \
             an operation or a fragment."
        );
        assert_eq!(
            message("query { me(x: ) { id } }"),
            "Syntax error at line 1, column 15: expected a value."
        );
    }

    #[test]
    fn no_diagram_is_left() {
        for text in [
            "{",
            "}",
            "query (",
            "{ a(b: [1, ) }",
            "fragment on on X { a }",
            "\"\"\"",
        ] {
            let message = message(text);
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.contains("-->"), "{message}");
            assert!(message.ends_with('.'), "{message}");
        }
    }
}
