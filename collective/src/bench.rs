//! Benchmark (todo).
