//! Placeholder; the benchmark harness lands with the benchmarks issue.
fn main() {}
