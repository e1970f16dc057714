//! Benchmarks of the waypost core: see `benches/`.
