fn main() {
    eprintln!("bertstream-train: not built yet");
    std::process::exit(2);
}
