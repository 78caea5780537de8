//! Unit tests of [`measure`](super::measure): what is counted, and that no
//! document makes the walk itself expensive.

use async_graphql::Variables;
use serde_json::json;

use super::*;
use crate::graphql::LIMITS;

/// graphql-js's full introspection query, every option on.
const INTROSPECTION: &str = include_str!("../../../tests/api/introspection.graphql");

fn measured(query: &str) -> Result<Cost, Refusal> {
    measured_with(query, json!({}))
}

fn measured_with(query: &str, variables: serde_json::Value) -> Result<Cost, Refusal> {
    let document = async_graphql::parser::parse_query(query).unwrap();
    measure(&document, &Variables::from_json(variables), &LIMITS)
}

fn refused(query: &str) -> Limit {
    measured(query).unwrap_err().limit
}

fn nested_spreads(depth: usize, fanout: usize) -> String {
    let mut doc = format!("query {{ ...G{depth} }}\n");
    for k in 1..=depth {
        let spreads = format!("...G{} ", k - 1).repeat(fanout);
        doc.push_str(&format!("fragment G{k} on Query {{ {spreads}}}\n"));
    }
    doc.push_str("fragment G0 on Query { __typename }\n");
    doc
}

#[test]
fn the_full_introspection_query_fits_well_within_the_size_bound() {
    let cost = measured(INTROSPECTION).unwrap();
    eprintln!(
        "introspection query: {cost:?}, {} tokens",
        tokens::count(INTROSPECTION, usize::MAX)
    );
    assert!(cost.size * 4 <= LIMITS.max_size, "{cost:?}");
    assert_eq!(cost.aliases, 0);
    // Every field is under `__schema`; its deepest is the ninth `ofType`'s
    // leaf: __schema types fields args type, then TypeRef's ten levels.
    assert_eq!(cost.field_depth, 0, "{cost:?}");
    assert_eq!(cost.introspection_depth, 15, "{cost:?}");
    assert_eq!(cost.introspection_depth, LIMITS.max_introspection_depth);
    // Its fields fit the introspection bound; twice them do not.
    assert!(cost.introspection_size <= LIMITS.max_introspection_size);
    assert!(cost.introspection_size * 2 > LIMITS.max_introspection_size);
}

#[test]
fn field_depth_counts_fields_not_fragments_nor_typename_and_sets_introspection_apart() {
    let cost = |query: &str| measured(query).unwrap();
    let plain = cost("{ me { id } }");
    assert_eq!((plain.field_depth, plain.introspection_depth), (2, 0));
    let wrapped = cost(
        "{ ... on Query { me { ...U } } } fragment U on User { ... on User { id __typename } }",
    );
    assert_eq!(wrapped.field_depth, 2, "{wrapped:?}");
    let mixed =
        cost("{ me { id } __type(name: \"User\") { fields { type { ofType { name } } } } }");
    assert_eq!(mixed.field_depth, 2, "{mixed:?}");
    assert_eq!(mixed.introspection_depth, 5, "{mixed:?}");
    assert_eq!(mixed.introspection_size, 5, "{mixed:?}");
    // Spread twice, counted twice; `__typename` not at all.
    let twice = cost("{ a: __schema { ...T } b: __schema { ...T } } fragment T on __Schema { types { name __typename } }");
    assert_eq!(twice.introspection_size, 6, "{twice:?}");
    let deep = format!("{{ {}id{} }}", "me { ".repeat(12), " }".repeat(12));
    assert_eq!(refused(&deep), Limit::FieldDepth);
    let ok = format!("{{ {}__typename{} }}", "me { ".repeat(12), " }".repeat(12));
    assert_eq!(measured(&ok).unwrap().field_depth, 12);
}

#[test]
fn complexity_leaves_out_introspection_fields_only() {
    let cost = Cost {
        introspection_size: 300,
        ..Cost::default()
    };
    assert!(check_complexity(800, &cost, &LIMITS).is_ok());
    let refusal = check_complexity(801, &cost, &LIMITS).unwrap_err();
    assert_eq!((refusal.limit, refusal.found), (Limit::Complexity, 501));
    assert!(check_complexity(501, &Cost::default(), &LIMITS).is_err());
}

/// `measure_counting` on `query`: the measure, and the selections visited.
fn counted(query: &str) -> (Result<Cost, Refusal>, usize) {
    let document = async_graphql::parser::parse_query(query).unwrap();
    measure_counting(&document, &Variables::default(), &LIMITS)
}

#[test]
fn nested_spreads_are_measured_expanded_without_being_expanded() {
    // One selection in the operation, five spreads in each of ten
    // fragments, `__typename` in the last: 52 written, 5^10 expanded.
    let (measured, visited) = counted(&nested_spreads(10, 5));
    let refusal = measured.unwrap_err();
    assert_eq!(refusal.limit, Limit::Size);
    assert!(refusal.found >= 5usize.pow(10), "{refusal:?}");
    assert_eq!(visited, 1 + 10 * 5 + 1);
    // Sixty levels of fan-out 8 overflow any integer: the sum saturates,
    // and the walk still visits each written selection once.
    let (measured, visited) = counted(&nested_spreads(60, 8));
    let refusal = measured.unwrap_err();
    assert_eq!((refusal.limit, refusal.found), (Limit::Size, usize::MAX));
    assert_eq!(visited, 1 + 60 * 8 + 1);
    // Wide fragments spread side by side: 40 + 400 written.
    let wide = format!(
        "{{ {} }} fragment W on Query {{ {} }}",
        "...W ".repeat(40),
        "__typename ".repeat(400)
    );
    let (measured, visited) = counted(&wide);
    assert_eq!(measured.unwrap_err().limit, Limit::Size);
    assert_eq!(visited, 40 + 400);
}

#[test]
fn typename_introspection_inline_fragments_directives_and_arguments_all_count() {
    let base = measured("{ me { id } }").unwrap().size;
    let more = |query: &str| measured(query).unwrap().size - base;
    assert_eq!(more("{ me { id } __typename }"), 1);
    assert_eq!(more("{ me { id } __schema { types { name } } }"), 3);
    assert_eq!(more("{ me { id } ... on Query { __typename } }"), 2);
    assert_eq!(more("{ me @include(if: true) { id } }"), 3);
    assert_eq!(
        more("{ me { id } auditLog(first: 5) { pageInfo { hasNextPage } } }"),
        5
    );
    // A list argument counts its items; a long string one more per 64 bytes.
    assert_eq!(
        more(
            r#"{ me { id } auditLog(filter: { kinds: [LOGIN_FAILED, LOGIN_SUCCEEDED] }) { pageInfo { hasNextPage } } }"#
        ),
        8
    );
    let long = format!(
        r#"{{ me {{ id }} user(id: "{}") {{ id }} }}"#,
        "x".repeat(640)
    );
    assert_eq!(more(&long), 2 + 2 + 10);
}

#[test]
fn a_variable_counts_as_the_value_the_request_sent_for_it() {
    let query = "query($f: AuditLogFilter) { auditLog(filter: $f) { pageInfo { hasNextPage } } }";
    let small = measured_with(query, json!({ "f": { "kinds": ["LOGIN_FAILED"] } }))
        .unwrap()
        .size;
    let kinds = vec!["LOGIN_FAILED"; LIMITS.max_size];
    let big = measured_with(query, json!({ "f": { "kinds": kinds } })).unwrap_err();
    assert_eq!(big.limit, Limit::Size);
    assert!(
        big.found >= small + LIMITS.max_size - 1,
        "{small} then {big:?}"
    );
}

#[test]
fn aliases_audit_log_and_introspection_fields_are_counted_in_the_expanded_operation() {
    let twenty: String = (0..20).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let once = format!("query {{ ...A }} fragment A on Query {{ {twenty} }}");
    assert_eq!(measured(&once).unwrap().aliases, 20);
    let twice = format!("query {{ ...A ...A }} fragment A on Query {{ {twenty} }}");
    let refusal = measured(&twice).unwrap_err();
    assert_eq!((refusal.limit, refusal.found), (Limit::Aliases, 40));

    let log = "auditLog { edges { cursor } }";
    assert_eq!(measured(&format!("{{ {log} }}")).unwrap().audit_logs, 1);
    for query in [
        format!("{{ a: {log} b: {log} }}"),
        format!("{{ ...A ...A }} fragment A on Query {{ {log} }}"),
        format!("{{ ...A ... on Query {{ {log} }} }} fragment A on Query {{ {log} }}"),
    ] {
        assert_eq!(refused(&query), Limit::AuditLog, "{query}");
    }
    let schema = "__schema { types { name } }";
    assert_eq!(
        refused(&format!(
            "{{ a: {schema} b: {schema} c: __type(name: \"User\") {{ name }} }}"
        )),
        Limit::Introspection
    );
    assert_eq!(
        refused(&format!(
            "{{ ...S ...S ...S }} fragment S on Query {{ {schema} }}"
        )),
        Limit::Introspection
    );
    assert_eq!(measured(INTROSPECTION).unwrap().introspection, 1);
    // Two operations, one runs: each may read the log once.
    let two = format!("query A {{ {log} }} query B {{ {log} }}");
    assert_eq!(measured(&two).unwrap().audit_logs, 1);
}

#[test]
fn cycles_and_unknown_fragments_are_refused_without_recursing() {
    assert_eq!(
        refused("{ ...A } fragment A on Query { ...A }"),
        Limit::FragmentCycle
    );
    assert_eq!(
        refused("{ ...A } fragment A on Query { me { ...B } } fragment B on User { ...A }"),
        Limit::FragmentCycle
    );
    // An unused cycle is refused too: validation would walk it.
    assert_eq!(
        refused("{ me { id } } fragment A on Query { ...B } fragment B on Query { ...A }"),
        Limit::FragmentCycle
    );
    let unknown = measured("{ ...Nope }").unwrap_err();
    assert_eq!(unknown.limit, Limit::UnknownFragment);
    assert_eq!(unknown.fragment.as_deref(), Some("Nope"));
}

#[test]
fn deep_nesting_through_fragments_is_refused_before_the_stack_suffers() {
    // 60 fragments, each nesting the next 40 levels down: 2,400 levels.
    let mut doc = String::from("{ ...F0 }");
    for k in 0..60 {
        let body = format!("{}...F{}{}", "me { ".repeat(40), k + 1, " }".repeat(40));
        doc.push_str(&format!(" fragment F{k} on Query {{ {body} }}"));
    }
    doc.push_str(" fragment F60 on Query { __typename }");
    assert_eq!(refused(&doc), Limit::Depth);
}

#[test]
fn unused_definitions_variables_arguments_and_directives_are_bounded_as_written() {
    let fragments: String = (0..70)
        .map(|i| format!("fragment F{i} on Query {{ __typename }} "))
        .collect();
    assert_eq!(
        refused(&format!("{{ me {{ id }} }} {fragments}")),
        Limit::Definitions
    );
    let variables: String = (0..70).map(|i| format!("$v{i}: Int ")).collect();
    assert_eq!(
        refused(&format!("query({variables}) {{ me {{ id }} }}")),
        Limit::Variables
    );
    let arguments: String = (0..130).map(|i| format!("a{i}: 1 ")).collect();
    assert_eq!(
        refused(&format!("{{ me({arguments}) {{ id }} }}")),
        Limit::Arguments
    );
    let directives = "@include(if: true) ".repeat(70);
    assert_eq!(
        refused(&format!("{{ me {{ id {directives} }} }}")),
        Limit::Directives
    );
}

#[test]
fn refusals_name_the_limit_and_never_panic_on_odd_documents() {
    let refusal = measured(&nested_spreads(10, 5)).unwrap_err();
    let message = refusal.to_string();
    assert!(
        message.contains(&format!("at most {}", LIMITS.max_size)),
        "{message}"
    );
    assert!(measured("{ __typename }").is_ok());
    assert!(measured("query A { me { id } } query B { me { email } }").is_ok());
    assert!(measured("fragment A on Query { __typename } { ...A }").is_ok());
}

/// A random document: fragments spreading lower ones, aliases, inline
/// fragments, directives, arguments with values and variables.
fn random_document(rng: &mut impl rand::Rng) -> String {
    let fragments = rng.random_range(0..8usize);
    let selection = |rng: &mut dyn rand::RngCore, below: usize| -> String {
        let mut out = String::new();
        for _ in 0..rand::Rng::random_range(rng, 1..6usize) {
            let piece = match rand::Rng::random_range(rng, 0..8u8) {
                0 => "__typename".to_owned(),
                1 => format!("a{}: me {{ id }}", rng.next_u32() % 100),
                2 if below > 0 => format!("...F{}", rng.next_u32() as usize % below),
                3 => "... on Query { __typename }".to_owned(),
                4 => "me @include(if: $v) { email }".to_owned(),
                5 => {
                    r#"user(id: "x y", opts: { a: [1, -2.5e+3, "s"], b: null }) { id }"#.to_owned()
                }
                6 => "__schema { types { name } }".to_owned(),
                _ => "auditLog(first: 5) { pageInfo { hasNextPage } }".to_owned(),
            };
            out.push_str(&piece);
            out.push_str(if rng.next_u32() % 2 == 0 {
                " "
            } else {
                ",\n # note\n"
            });
        }
        out
    };
    let mut doc = format!(
        "query Q($v: Boolean = true) {{ {} }}\n",
        selection(rng, fragments)
    );
    for k in 0..fragments {
        doc.push_str(&format!(
            "fragment F{k} on Query {{ {} }}\n",
            selection(rng, k)
        ));
    }
    doc
}

#[test]
fn the_token_and_selection_counts_never_exceed_what_measure_finds() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let unbounded = Limits {
        max_size: usize::MAX,
        max_aliases: usize::MAX,
        max_audit_logs: usize::MAX,
        max_introspection: usize::MAX,
        max_depth: 64,
        max_field_depth: usize::MAX,
        max_introspection_depth: usize::MAX,
        max_introspection_size: usize::MAX,
        max_complexity: usize::MAX,
        max_definitions: usize::MAX,
        max_variables: usize::MAX,
        max_arguments: usize::MAX,
        max_directives: usize::MAX,
    };
    let mut documents: Vec<String> = (0..500).map(|_| random_document(&mut rng)).collect();
    documents.push(INTROSPECTION.to_owned());
    documents.push("fragment F on Query { __typename } query { ...F }".to_owned());
    documents.push("query($a: Int, $b: [String!]! = [\"x\"]) { a: me { id } }".to_owned());
    for doc in &documents {
        let parsed = async_graphql::parser::parse_query(doc).unwrap();
        let size = measure(&parsed, &Variables::default(), &unbounded)
            .unwrap()
            .size;
        let scan = tokens::scan(doc, usize::MAX);
        assert!(scan.tokens <= 2 * size, "{scan:?}, size {size}: {doc}");
        assert!(scan.selections <= size, "{scan:?}, size {size}: {doc}");
    }
}
