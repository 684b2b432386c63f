//! An rpath to libtorch for this crate's binaries and tests, so that they run
//! from a plain shell. The folder and the CUDA link flag come from the model
//! crate's build script (see model/build.rs: cargo cannot pass link arguments
//! on to dependents, only metadata, hence these few lines in every such crate).
fn main() {
    // Reruns when this file or the model crate's metadata changes (cargo
    // passes a changed DEP_ value on by running this again).
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(lib) = std::env::var("DEP_BERTSTREAM_MODEL_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    if std::env::var("DEP_BERTSTREAM_MODEL_LINK_TORCH").as_deref() == Ok("1") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch,--as-needed");
    }
}
