//! What a document costs once every fragment spread is expanded, measured
//! before anything else walks it.
//!
//! async-graphql's own checks (recursion depth and directives right after
//! parsing; depth, complexity and the validation rules after that) and its
//! executor all expand each fragment spread anew, every time it is spread.
//! Ten fragments that each spread the one below five times are 600 bytes of
//! text and ten million fields once expanded: those walks were the attack.
//!
//! [`measure`] walks the document once. Each fragment definition is walked
//! once and its [`Tally`] memoised, so a spread costs a lookup however deep
//! the nesting; sizes add with saturating arithmetic, so no document can
//! overflow them. A fragment that spreads itself (directly or not) or a
//! spread of a fragment that does not exist is refused here, since
//! validation, which would report it, has not run yet.
//!
//! What is counted, in the expanded document (each spread replaced by the
//! fragment it names):
//! - every selection: fields (`__typename`, `__schema`, `__type` and their
//!   subfields too), inline fragments and spreads, one each;
//! - every argument and directive, plus the size of its value: one per
//!   list item, object field or scalar, one more per 64 bytes of a string,
//!   and a variable counts as the size of the value the request sent for it
//!   (validation copies it at every use);
//! - aliases, `auditLog` fields and `__schema`/`__type` fields, per
//!   operation.
//!
//! The size bound applies to all definitions together, operations and
//! fragments, used or not, since validation walks every one of them.
//! Definitions, variable definitions, arguments and directives are also
//! bounded as written, so a pile of unused parts is refused as cheaply.

use std::collections::HashMap;

use async_graphql::{
    parser::types::{
        Directive, ExecutableDocument, Field, OperationDefinition, Selection, SelectionSet,
    },
    Name, Positioned, Value, Variables,
};

mod figures;
mod refusal;
mod tokens;

pub use figures::{Cost, Limits, Tally};
pub use refusal::{Limit, Refusal};

/// Refuses, before parsing, a text certain to break a limit: one with more
/// than twice `limits.max_size` tokens or more than `max_size` selections
/// (it would measure more than `max_size`, see `tokens`), or more than
/// `limits.max_definitions` definitions. Costs one pass over the bytes.
pub fn check_text(text: &str, limits: &Limits) -> Result<(), Refusal> {
    let most = limits.max_size.saturating_mul(2);
    let scan = tokens::scan(text, most);
    if scan.tokens > most {
        return Err(Refusal {
            at_least: true,
            ..Refusal::new(Limit::Size, scan.tokens / 2, limits.max_size)
        });
    }
    if scan.selections > limits.max_size {
        return Err(Refusal {
            at_least: true,
            ..Refusal::new(Limit::Size, scan.selections, limits.max_size)
        });
    }
    if scan.definitions > limits.max_definitions {
        return Err(Refusal::new(
            Limit::Definitions,
            scan.definitions,
            limits.max_definitions,
        ));
    }
    Ok(())
}

/// Measures `document` (with the request's `variables`) against `limits`.
pub fn measure(
    document: &ExecutableDocument,
    variables: &Variables,
    limits: &Limits,
) -> Result<Cost, Refusal> {
    measure_counting(document, variables, limits).0
}

/// [`measure`], and how many selections the walk visited: each selection
/// as written at most once, however often its fragment is spread. The
/// unit tests hold the walk to that count, which is what makes its cost
/// the length of the text rather than of the expanded document.
fn measure_counting(
    document: &ExecutableDocument,
    variables: &Variables,
    limits: &Limits,
) -> (Result<Cost, Refusal>, usize) {
    let definitions = document
        .operations
        .iter()
        .count()
        .saturating_add(document.fragments.len());
    if definitions > limits.max_definitions {
        let refusal = Refusal::new(Limit::Definitions, definitions, limits.max_definitions);
        return (Err(refusal), 0);
    }
    let mut walk = Walk {
        document,
        variables,
        limits,
        fragments: HashMap::with_capacity(document.fragments.len()),
        variable_sizes: HashMap::new(),
        variable_definitions: 0,
        arguments: 0,
        directives: 0,
        visited: 0,
    };
    let cost = walk.document_cost();
    (cost, walk.visited)
}

impl Walk<'_> {
    /// The whole document's cost, checked against the limits.
    fn document_cost(&mut self) -> Result<Cost, Refusal> {
        let (document, limits) = (self.document, self.limits);
        let mut cost = Cost::default();
        for (_, operation) in document.operations.iter() {
            let tally = self.operation(&operation.node)?;
            cost.size = cost.size.saturating_add(tally.size);
            cost.aliases = cost.aliases.max(tally.aliases);
            cost.audit_logs = cost.audit_logs.max(tally.audit_logs);
            cost.introspection = cost.introspection.max(tally.introspection);
            cost.depth = cost.depth.max(tally.height);
            cost.field_depth = cost.field_depth.max(tally.ordinary_height);
            cost.introspection_depth = cost.introspection_depth.max(tally.introspection_height);
            cost.introspection_size = cost
                .introspection_size
                .saturating_add(tally.introspection_size);
        }
        for name in document.fragments.keys() {
            let tally = self.fragment(name, 0)?;
            cost.size = cost.size.saturating_add(tally.size);
            cost.depth = cost.depth.max(tally.height);
        }
        let checks = [
            (
                Limit::Variables,
                self.variable_definitions,
                limits.max_variables,
            ),
            (Limit::Arguments, self.arguments, limits.max_arguments),
            (Limit::Directives, self.directives, limits.max_directives),
            (Limit::Size, cost.size, limits.max_size),
            (Limit::Depth, cost.depth, limits.max_depth),
            (Limit::Aliases, cost.aliases, limits.max_aliases),
            (Limit::AuditLog, cost.audit_logs, limits.max_audit_logs),
            (
                Limit::Introspection,
                cost.introspection,
                limits.max_introspection,
            ),
            (Limit::FieldDepth, cost.field_depth, limits.max_field_depth),
            (
                Limit::IntrospectionDepth,
                cost.introspection_depth,
                limits.max_introspection_depth,
            ),
            (
                Limit::IntrospectionSize,
                cost.introspection_size,
                limits.max_introspection_size,
            ),
        ];
        for (limit, found, max) in checks {
            if found > max {
                return Err(Refusal::new(limit, found, max));
            }
        }
        Ok(cost)
    }
}

/// Checks `complexity`, as async-graphql's validation counted it for the
/// whole document, less the introspection fields `cost` found (each of
/// which validation counted as one: introspection types declare no
/// complexity of their own), against `limits.max_complexity`.
pub fn check_complexity(complexity: usize, cost: &Cost, limits: &Limits) -> Result<(), Refusal> {
    let ordinary = complexity.saturating_sub(cost.introspection_size);
    if ordinary > limits.max_complexity {
        return Err(Refusal::new(
            Limit::Complexity,
            ordinary,
            limits.max_complexity,
        ));
    }
    Ok(())
}

/// A written argument value as a constant, with the variables it names.
///
/// async-graphql does not re-export the parser's type for written values,
/// so it cannot appear in a signature; its inherent `into_const_with` is
/// called where the type is inferred. One copy, as long as the text.
macro_rules! written_value {
    ($value:expr) => {{
        let mut used: Vec<Name> = Vec::new();
        let constant = match $value.clone().into_const_with(|name| {
            used.push(name);
            Ok::<Value, std::convert::Infallible>(Value::Null)
        }) {
            Ok(constant) => constant,
            Err(never) => match never {},
        };
        (constant, used)
    }};
}

enum Memo {
    /// Being walked: meeting it again is a cycle.
    Walking,
    Done(Tally),
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    limits: &'a Limits,
    fragments: HashMap<&'a str, Memo>,
    variable_sizes: HashMap<&'a str, usize>,
    variable_definitions: usize,
    arguments: usize,
    directives: usize,
    /// Selections visited so far (see [`measure_counting`]).
    visited: usize,
}

impl<'a> Walk<'a> {
    fn operation(&mut self, operation: &'a OperationDefinition) -> Result<Tally, Refusal> {
        let mut tally = Tally {
            size: 1,
            ..Tally::default()
        };
        self.variable_definitions = self
            .variable_definitions
            .saturating_add(operation.variable_definitions.len());
        for definition in &operation.variable_definitions {
            let definition = &definition.node;
            tally.grow(1);
            if let Some(default) = &definition.default_value {
                tally.grow(const_size(&default.node));
            }
            tally.grow(self.directives(&definition.directives));
        }
        tally.grow(self.directives(&operation.directives));
        tally.add(self.selection_set(&operation.selection_set.node, 0)?);
        Ok(tally)
    }

    /// The memoised tally of the fragment `name`, whose spread sits at `level`.
    fn fragment(&mut self, name: &'a str, level: usize) -> Result<Tally, Refusal> {
        match self.fragments.get(name) {
            Some(Memo::Done(tally)) => return Ok(*tally),
            Some(Memo::Walking) => return Err(Refusal::fragment(Limit::FragmentCycle, name)),
            None => {}
        }
        let Some((key, definition)) = self.document.fragments.get_key_value(name) else {
            return Err(Refusal::fragment(Limit::UnknownFragment, name));
        };
        self.fragments.insert(key.as_str(), Memo::Walking);
        // Two: its name and its type condition (see `tokens`).
        let mut tally = Tally {
            size: 2,
            ..Tally::default()
        };
        tally.grow(self.directives(&definition.node.directives));
        tally.add(self.selection_set(&definition.node.selection_set.node, level)?);
        self.fragments.insert(key.as_str(), Memo::Done(tally));
        Ok(tally)
    }

    /// The tally of `set`, which sits `level` levels below its definition.
    fn selection_set(&mut self, set: &'a SelectionSet, level: usize) -> Result<Tally, Refusal> {
        // Only the first walk of each fragment recurses, so this bounds the
        // stack; the heights of memoised fragments are checked in `measure`.
        if level > self.limits.max_depth {
            return Err(Refusal::new(Limit::Depth, level, self.limits.max_depth));
        }
        let mut tally = Tally {
            height: 1,
            ..Tally::default()
        };
        for item in &set.items {
            self.visited = self.visited.saturating_add(1);
            let mut child = Tally {
                size: 1,
                ..Tally::default()
            };
            let mut field_name = None;
            let below = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    field_name = Some(field.name.node.as_str());
                    child.aliases = usize::from(field.alias.is_some());
                    child.audit_logs = usize::from(field.name.node == "auditLog");
                    child.introspection =
                        usize::from(matches!(field.name.node.as_str(), "__schema" | "__type"));
                    child.grow(self.arguments(field));
                    child.grow(self.directives(&field.directives));
                    if field.selection_set.node.items.is_empty() {
                        None
                    } else {
                        Some(self.selection_set(&field.selection_set.node, level + 1)?)
                    }
                }
                Selection::InlineFragment(inline) => {
                    child.grow(self.directives(&inline.node.directives));
                    Some(self.selection_set(&inline.node.selection_set.node, level + 1)?)
                }
                Selection::FragmentSpread(spread) => {
                    child.grow(self.directives(&spread.node.directives));
                    Some(self.fragment(spread.node.fragment_name.node.as_str(), level + 1)?)
                }
            };
            let below = match below {
                Some(mut below) => {
                    below.height = below.height.saturating_add(1);
                    below
                }
                None => Tally::default(),
            };
            // Inline fragments and spreads add no field level.
            child.add(match field_name {
                Some(name) => below.under_field(name),
                None => below,
            });
            tally.add(child);
        }
        Ok(tally)
    }

    fn arguments(&mut self, field: &'a Field) -> usize {
        self.arguments = self.arguments.saturating_add(field.arguments.len());
        let mut size = 0usize;
        for (_, value) in &field.arguments {
            let (constant, used) = written_value!(value.node);
            size = size
                .saturating_add(1)
                .saturating_add(self.value_size(&constant, &used));
        }
        size
    }

    fn directives(&mut self, directives: &'a [Positioned<Directive>]) -> usize {
        self.directives = self.directives.saturating_add(directives.len());
        let mut size = 0usize;
        for directive in directives {
            let directive = &directive.node;
            self.arguments = self.arguments.saturating_add(directive.arguments.len());
            size = size.saturating_add(1);
            for (_, value) in &directive.arguments {
                let (constant, used) = written_value!(value.node);
                size = size
                    .saturating_add(1)
                    .saturating_add(self.value_size(&constant, &used));
            }
        }
        size
    }

    /// The size of a written value: its own nodes, and for each variable
    /// in it the size of the value the request sent for it.
    fn value_size(&mut self, constant: &Value, used: &[Name]) -> usize {
        let mut size = const_size(constant);
        let variables = self.variables;
        for name in used {
            let sent = match variables.get_key_value(name) {
                Some((key, value)) => *self
                    .variable_sizes
                    .entry(key.as_str())
                    .or_insert_with(|| const_size(value)),
                None => 1,
            };
            size = size.saturating_add(sent);
        }
        size
    }
}

/// Nodes in a constant value: one per scalar, list item and object field,
/// plus one per 64 bytes of a string. Iterative: a value may be nested as
/// deep as the parser allows.
pub fn const_size(value: &Value) -> usize {
    let mut size = 0usize;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        size = size.saturating_add(1);
        match value {
            Value::String(s) => size = size.saturating_add(s.len() / 64),
            Value::Binary(b) => size = size.saturating_add(b.len() / 64),
            Value::List(items) => stack.extend(items.iter()),
            Value::Object(fields) => stack.extend(fields.values()),
            Value::Null | Value::Number(_) | Value::Boolean(_) | Value::Enum(_) => {}
        }
    }
    size
}

#[cfg(test)]
mod tests;
