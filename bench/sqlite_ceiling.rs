//! Placeholder; the SQLite ceiling lands with the benchmarks issue.
fn main() {}
