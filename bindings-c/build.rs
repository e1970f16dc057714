//! Gives the shared library a versioned soname, so programs linked against
//! an installed `libwaypost.so` record `libwaypost.so.0`, not a path.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwaypost.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
