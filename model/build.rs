//! libtorch's folder, for the binaries that link it. A tch binary gets no
//! rpath by default; this gives the crate's own examples and tests one, so
//! that they run from a plain shell without LD_LIBRARY_PATH.
//!
//! Cargo has no way to pass link arguments on to dependent crates, so the
//! folder (read from torch-sys, a direct dependency) is also passed on as this
//! package's `links` metadata: each crate that builds binaries linking libtorch
//! (train, worker, tests) uses `dependent-build.rs`, which turns
//! `DEP_BERTSTREAM_MODEL_LIBTORCH_LIB` and `DEP_BERTSTREAM_MODEL_LINK_TORCH`
//! into the same link arguments.
fn main() {
    println!("cargo:rerun-if-env-changed=BERTSTREAM_CUDA");
    // Without `--no-as-needed -ltorch` the linker drops libtorch (and so
    // libtorch_cuda) as unused and CUDA is never seen. Only for CUDA builds:
    // on a CPU-only torch install the CUDA libraries it would pull in are absent.
    let link_torch = std::env::var("BERTSTREAM_CUDA").as_deref() == Ok("1");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        if link_torch {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch,--as-needed");
        }
        println!("cargo:libtorch_lib={lib}");
        println!("cargo:link_torch={}", u8::from(link_torch));
    }
}
