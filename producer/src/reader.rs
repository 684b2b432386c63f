//! The reader thread: reads the inputs (K times with --repeat), applies
//! --limit and the repeat id suffix, and hands items to the sender over a
//! bounded channel, so a 10 GB file is streamed, never held in memory. It
//! stops on its own after a fatal error or (with --strict) a bad line, and
//! when the sender hangs up.

use schemas::{validate_id, ReviewV1};
use tokio::sync::mpsc::Sender;

use crate::input::{Columns, Entry, Input};

/// What the sender receives.
#[derive(Debug)]
pub enum Item {
    Review {
        review: ReviewV1,
        bytes: u64,
    },
    /// `at` is `file:line`. `report` is false for a line already reported in an earlier pass.
    Bad {
        at: String,
        reason: String,
        bytes: u64,
        report: bool,
    },
    /// The run cannot go on (an unreadable file, a missing column).
    Fatal(String),
}

/// Everything the reader needs, taken from the flags.
#[derive(Debug, Clone)]
pub struct Plan {
    pub inputs: Vec<Input>,
    pub columns: Columns,
    pub repeat: u32,
    pub limit: Option<u64>,
    pub strict: bool,
}

pub fn spawn(plan: Plan, tx: Sender<Item>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("reader".into()).spawn(move || {
        // Err only means the sender has stopped listening; there is nothing to tell.
        let _ = read(&plan, &tx);
    })
}

/// The sender is gone.
struct Closed;

fn read(plan: &Plan, tx: &Sender<Item>) -> Result<(), Closed> {
    let send = |item| tx.blocking_send(item).map_err(|_| Closed);
    let mut emitted = 0u64;
    if plan.limit == Some(0) {
        return Ok(());
    }
    for pass in 1..=plan.repeat {
        for input in &plan.inputs {
            let reader = match input.open() {
                Ok(reader) => reader,
                Err(e) => return send(Item::Fatal(format!("{}: {e}", input.name))),
            };
            for entry in input.entries(reader, &plan.columns) {
                let item = match entry {
                    Err(e) => return send(Item::Fatal(format!("{}: {e}", input.name))),
                    Ok(Entry::Review { line, bytes, review }) => match repeated(review, pass) {
                        Ok(review) => Item::Review { review, bytes },
                        Err(reason) => Item::Bad { at: format!("{}:{line}", input.name), reason, bytes, report: true },
                    },
                    Ok(Entry::Bad { line, bytes, reason }) => {
                        Item::Bad { at: format!("{}:{line}", input.name), reason, bytes, report: pass == 1 }
                    }
                };
                let stop = match &item {
                    Item::Review { .. } => {
                        emitted += 1;
                        plan.limit == Some(emitted)
                    }
                    Item::Bad { .. } => plan.strict,
                    Item::Fatal(_) => true,
                };
                send(item)?;
                if stop {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// The review as published in pass `pass`: passes after the first get `#<pass>`
/// on the id, which must still be a valid id.
fn repeated(mut review: ReviewV1, pass: u32) -> Result<ReviewV1, String> {
    if pass > 1 {
        review.id = format!("{}#{pass}", review.id);
        validate_id(&review.id).map_err(|p| format!("{p} (with the --repeat suffix)"))?;
    }
    Ok(review)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Format;

    fn plan(dir: &tempfile::TempDir, files: &[(&str, &str)], repeat: u32, limit: Option<u64>, strict: bool) -> Plan {
        let inputs = files
            .iter()
            .map(|(name, data)| {
                let path = dir.path().join(name);
                std::fs::write(&path, data).expect("write");
                Input::file(&path, None).expect("input")
            })
            .collect();
        Plan { inputs, columns: Columns::default(), repeat, limit, strict }
    }

    fn run(plan: Plan) -> Vec<String> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let handle = spawn(plan, tx).expect("spawn");
        let mut got = Vec::new();
        while let Some(item) = rx.blocking_recv() {
            got.push(match item {
                Item::Review { review, .. } => review.id,
                Item::Bad { at, report, .. } => format!("bad {at} {report}"),
                Item::Fatal(e) => format!("fatal {e}"),
            });
        }
        handle.join().expect("join");
        got
    }

    fn names(got: Vec<String>, dir: &tempfile::TempDir) -> Vec<String> {
        let prefix = format!("{}/", dir.path().display());
        got.into_iter().map(|s| s.replace(&prefix, "")).collect()
    }

    #[test]
    fn repeats_get_a_suffix_and_bad_lines_are_reported_once() {
        let dir = tempfile::tempdir().expect("dir");
        let got = run(plan(&dir, &[("a.txt", "x\ny\n"), ("b.tsv", "1\tz\nbad\n")], 2, None, false));
        let got = names(got, &dir);
        assert_eq!(got, ["a:1", "a:2", "b:1", "bad b.tsv:2 true", "a:1#2", "a:2#2", "b:1#2", "bad b.tsv:2 false"]);
    }

    #[test]
    fn limit_counts_messages_across_repeats() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(
            run(plan(&dir, &[("a.txt", "x\ny\n")], 3, Some(5), false)),
            ["a:1", "a:2", "a:1#2", "a:2#2", "a:1#3"]
        );
        assert!(run(plan(&dir, &[("a.txt", "x\n")], 1, Some(0), false)).is_empty());
    }

    #[test]
    fn strict_stops_at_the_first_bad_line() {
        let dir = tempfile::tempdir().expect("dir");
        let got = names(run(plan(&dir, &[("a.tsv", "1\tok\nbad\n1\tnever\n")], 1, None, true)), &dir);
        assert_eq!(got, ["a:1", "bad a.tsv:2 true"]);
    }

    #[test]
    fn a_fatal_input_error_ends_the_reading() {
        let dir = tempfile::tempdir().expect("dir");
        let mut p = plan(&dir, &[("a.csv", "id,body\n1,x\n"), ("b.txt", "never\n")], 1, None, false);
        p.inputs[0].format = Format::Csv;
        let got = names(run(p), &dir);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("fatal a.csv: no text column"), "{got:?}");
    }

    #[test]
    fn a_suffix_that_makes_the_id_too_long_is_a_bad_line() {
        let review = ReviewV1 { id: "i".repeat(127), text: "t".into(), extra: Default::default() };
        assert!(repeated(review.clone(), 1).is_ok());
        assert!(repeated(review, 2).expect_err("too long").contains("--repeat"));
    }
}
