//! `schema.graphql` is generated from the code and must be current.

#[test]
fn the_committed_schema_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .unwrap_or_default();
    assert!(
        committed == warden::graphql::sdl(),
        "schema.graphql is stale: regenerate it with `cargo run -- export-schema > schema.graphql`"
    );
}
