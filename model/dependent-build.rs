//! The build script of every crate that builds binaries linking libtorch
//! through the model crate (train, worker, tests: `build =
//! "../model/dependent-build.rs"`): an rpath to libtorch, so that its binaries
//! and tests run from a plain shell. The folder and the CUDA link flag come
//! from the model crate's build script as metadata (see model/build.rs: cargo
//! cannot pass link arguments on to dependents).
fn main() {
    // Reruns when this file or the model crate's metadata changes (cargo
    // passes a changed DEP_ value on by running this again).
    println!("cargo:rerun-if-changed=../model/dependent-build.rs");
    if let Ok(lib) = std::env::var("DEP_BERTSTREAM_MODEL_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    if std::env::var("DEP_BERTSTREAM_MODEL_LINK_TORCH").as_deref() == Ok("1") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch,--as-needed");
    }
}
