fn main() {
    eprintln!("bertstream-worker: not built yet");
    std::process::exit(2);
}
