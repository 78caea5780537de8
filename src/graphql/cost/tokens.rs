//! A count of a document's tokens, taken before it is parsed.
//!
//! Parsing is linear but not cheap: about 50 ms of CPU for 64 KiB of
//! aliased fields, optimised. A document with more than `2 × max_size`
//! names and literals is certain to measure more than `max_size` (every
//! name or literal belongs to a node, and no node has more than two: an
//! alias and its field, `... on Type`, `fragment F on T` and its non-empty
//! selection set, `$v: Type`), so such a text is refused after one pass
//! over its bytes, before the parser sees it.
//!
//! Tighter still: inside a selection set and outside parentheses, a name
//! that is not an alias (followed by `:`) nor the `on Type` of an inline
//! fragment is a field, a spread or a directive, one node each. More such
//! names than `max_size` is refused as well.

/// What one pass over a text found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Names, numbers and strings; punctuation, commas, whitespace and
    /// comments are not counted.
    pub tokens: usize,
    /// Operations and fragments: each has exactly one selection set that
    /// opens outside any other braces or parentheses.
    pub definitions: usize,
    /// Fields, spreads and directives written in selection sets.
    pub selections: usize,
}

/// Names, numbers and strings in `text`. Stops counting past `stop`.
#[cfg(test)]
pub fn count(text: &str, stop: usize) -> usize {
    scan(text, stop).tokens
}

/// Scans `text`, stopping once more than `stop` tokens are seen.
pub fn scan(text: &str, stop: usize) -> Scan {
    let bytes = text.as_bytes();
    let mut tokens = 0usize;
    let mut definitions = 0usize;
    let mut selections = 0usize;
    let (mut braces, mut parens) = (0usize, 0usize);
    // After `...`: an `on` there, and the type after it, are not selections.
    let (mut after_spread, mut type_condition) = (false, false);
    let mut i = 0usize;
    while i < bytes.len() && tokens <= stop {
        let byte = bytes[i];
        match byte {
            b'{' => {
                if braces == 0 && parens == 0 {
                    definitions += 1;
                }
                braces += 1;
            }
            b'}' => braces = braces.saturating_sub(1),
            b'(' => parens += 1,
            b')' => parens = parens.saturating_sub(1),
            b'#' => {
                i = skip_comment(bytes, i);
                continue;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                after_spread = true;
                i += 3;
                continue;
            }
            b'"' => {
                tokens += 1;
                i = skip_string(bytes, i);
                continue;
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => {
                let start = i;
                tokens += 1;
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'+' | b'-')
                {
                    // `.` `+` `-` only continue a number (`1.5e+3`); in a
                    // name they end it, which at worst counts one token more
                    // of a text the parser would refuse anyway.
                    if matches!(bytes[i], b'.' | b'+' | b'-') && !number_continues(bytes, i) {
                        break;
                    }
                    i += 1;
                }
                if braces > 0 && parens == 0 && (byte == b'_' || byte.is_ascii_alphabetic()) {
                    let name = &bytes[start..i];
                    if type_condition {
                        type_condition = false;
                    } else if after_spread && name == b"on" {
                        type_condition = true;
                    } else if next_significant(bytes, i) != Some(b':') {
                        selections += 1;
                    }
                }
                after_spread = false;
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        after_spread = false;
        i += 1;
    }
    Scan {
        tokens,
        definitions,
        selections,
    }
}

/// The index of the line end after the comment that starts at `start`.
fn skip_comment(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
        i += 1;
    }
    i
}

/// The first byte from `i` on that is not whitespace, a comma or a comment.
fn next_significant(bytes: &[u8], mut i: usize) -> Option<u8> {
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => i = skip_comment(bytes, i),
            byte => return Some(byte),
        }
    }
    None
}

/// True when the `.`, `+` or `-` at `i` is part of a number such as `1.5e-3`.
fn number_continues(bytes: &[u8], i: usize) -> bool {
    let next_is_digit = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
    match bytes[i] {
        b'.' => next_is_digit,
        _ => next_is_digit && matches!(bytes.get(i.wrapping_sub(1)), Some(b'e' | b'E')),
    }
}

/// The index just past the string (or block string) that starts at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    if bytes[start..].starts_with(b"\"\"\"") {
        let mut i = start + 3;
        while i < bytes.len() {
            if bytes[i..].starts_with(b"\\\"\"\"") {
                i += 4;
            } else if bytes[i..].starts_with(b"\"\"\"") {
                return i + 3;
            } else {
                i += 1;
            }
        }
        return i;
    }
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' | b'\n' | b'\r' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::{count, scan};

    #[test]
    fn names_numbers_and_strings_are_counted_punctuation_and_comments_are_not() {
        assert_eq!(count("{ me { id } }", usize::MAX), 2);
        assert_eq!(
            count("{ a: me(x: -1.5e+3, y: [1, 2]) { id } }", usize::MAX),
            8
        );
        assert_eq!(
            count(
                r#"{ f(s: "a b \" c", t: """ x "" y """) } # one two three"#,
                usize::MAX
            ),
            5
        );
        assert_eq!(
            count(
                "query Q($v: [Int!]! = 3) { ...F ... on Query { id } }",
                usize::MAX
            ),
            9
        );
        assert_eq!(count("fragment F on Query { __typename }", usize::MAX), 5);
        assert_eq!(
            count(&"a ".repeat(1000), 10),
            11,
            "counting stops past `stop`"
        );
    }

    #[test]
    fn selections_are_fields_spreads_and_directives_but_not_aliases_or_type_conditions() {
        let selections = |text: &str| scan(text, usize::MAX).selections;
        assert_eq!(selections("{ me { id } }"), 2);
        assert_eq!(selections("{ a: me(x: {y: 1}) { b # c\n : id } }"), 2);
        assert_eq!(
            selections(
                "query Q($v: Int) @d { ...F ... on Query { id } ... @skip(if: true) { x } }"
            ),
            4
        );
        assert_eq!(
            selections("fragment F on Query { __typename @include(if: $v) }"),
            2
        );
    }

    #[test]
    fn definitions_are_the_selection_sets_opened_at_the_top_level() {
        let definitions = |text: &str| scan(text, usize::MAX).definitions;
        assert_eq!(definitions("{ a { b } }"), 1);
        assert_eq!(
            definitions(
                "query Q($v: I = { a: { b: 1 } }) @d(x: {y: 2}) { a(o: {p: 1}) { b } } fragment F on Q { c }"
            ),
            2
        );
        assert_eq!(definitions(r#"{ a(s: "{ {") } # {"#), 1);
    }
}
