//! docker-compose.yml is valid (no Docker engine needed to check that).

use std::process::Command;

use bertstream_tests::repo_root;

#[test]
fn the_compose_file_is_valid() {
    let output = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(repo_root())
        .output()
        .expect("docker-compose is installed by scripts/bootstrap.sh");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
