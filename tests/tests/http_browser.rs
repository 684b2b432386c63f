//! The web page in real headless Chromium (playwright-core, tests/browser/):
//! open the page of a running worker, type a Chinese review, press the button,
//! see a label and its probabilities; the model panel shows the primary, the
//! shadow and their confusion matrix. Screenshots: target/browser/*.png.
//! Fails (never skips) when node, Chromium or the npm packages are missing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bertstream_tests::*;

fn require(ok: bool, what: &str) {
    assert!(ok, "the browser test needs {what}; scripts/bootstrap.sh installs it");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_classifies_a_chinese_review_in_headless_chromium() {
    let root = repo_root();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    require(
        Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success()),
        "Node.js (`node` on PATH)",
    );
    require(Path::new(&chromium).is_file(), &format!("Chromium at {chromium} (or set CHROMIUM)"));
    require(
        root.join("tests/browser/node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules (`npm ci` in tests/browser)",
    );

    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    let records: Vec<_> = (0..6).map(|i| review(&format!("b-{i}"), &sample_text(i))).collect();
    publish(&topics.input, &records).await;
    let shadow = tiny_model_reversed("reversed");
    let worker = Worker::start(&topics, &db, &[("SHADOW_MODEL_DIR", shadow.to_str().expect("utf-8"))]);
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(120), "the worker ready and 6 rows stored", || async {
        client.get(worker.url("/readyz")).send().await.is_ok_and(|r| r.status() == 200) && stored_count(&db).await == 6
    })
    .await;

    let shots = root.join("target/browser");
    let output = tokio::task::spawn_blocking({
        let (url, shots, root) = (worker.url("/"), shots.clone(), root.clone());
        move || {
            Command::new("node")
                .arg("tests/browser/page.test.mjs")
                .arg(url)
                .arg(shots)
                .current_dir(root)
                .env("CHROMIUM", chromium)
                .output()
        }
    })
    .await
    .expect("join")
    .expect("node runs");
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "browser test failed:\n{log}\nworker log:\n{}", worker.log_text());
    assert!(shots.join("page.png").is_file(), "screenshot saved");
    println!("{log}");
}
