//! WebAssembly bindings (wasm-bindgen).
