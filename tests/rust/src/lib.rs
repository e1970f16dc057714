//! The Rust scenario runner lives in `tests/scenarios.rs`.
