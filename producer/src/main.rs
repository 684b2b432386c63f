fn main() {
    eprintln!("bertstream-produce: not built yet");
    std::process::exit(2);
}
