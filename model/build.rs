//! Gives every binary and test of the crate an rpath to libtorch, so that a
//! built binary runs from a plain shell without LD_LIBRARY_PATH. Shared by the
//! crates that link tch (`build = "../model/build.rs"`).
fn main() {
    println!("cargo:rerun-if-env-changed=BERTSTREAM_CUDA");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        // Without this the linker drops libtorch (and so libtorch_cuda) as
        // unused and CUDA is never seen. Only for CUDA builds: on a CPU-only
        // torch install the CUDA libraries it would pull in are absent.
        if std::env::var("BERTSTREAM_CUDA").as_deref() == Ok("1") {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch,--as-needed");
        }
    }
}
