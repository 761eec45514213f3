//! The build script of every firmware binary (QEMU and boards): puts the package's own
//! `memory.x` on the linker path. (The model and the sampling configuration are baked into
//! the `tinyscore-app` library by its build script.)

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("memory.x is readable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
}
