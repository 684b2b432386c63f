//! `bertstream-worker backfill` against the real Kafka and Postgres: an
//! offset range gives exactly those reviews under the new model, a backfill
//! killed with SIGKILL resumes with no gap and no duplicate, the stored rows
//! are re-scored and promoted, and a bad command line exits 2 with a reason.

use std::collections::BTreeSet;
use std::time::Duration;

use bertstream_tests::*;

const STEADY: Duration = Duration::from_secs(180);

/// The backfill's rows of `model_prefix`: (review id, (partition, offset)).
async fn backfilled(db: &str, model_prefix: &str) -> BTreeSet<(String, (i32, i64))> {
    prediction_rows(db)
        .await
        .into_iter()
        .filter(|r| r.model.starts_with(model_prefix))
        .map(|r| (r.review_id, r.position))
        .collect()
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_of_an_offset_range_scores_exactly_those_reviews() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    publish(&topics.input, &reviews("r", 200)).await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_all_committed(&topics, STEADY).await;
    let reversed = tiny_model_reversed("reversed");
    let (code, out, err) = backfill(
        &topics,
        &db,
        &["--model", path(&reversed), "--from-offset", "0:10,1:5", "--to-offset", "0:40,1:30", "--rate", "0"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("scored   55 reviews"), "{out}");
    let expected: BTreeSet<(String, (i32, i64))> = read_all(&topics.input)
        .iter()
        .filter(|r| {
            (r.partition == 0 && (10..40).contains(&r.offset)) || (r.partition == 1 && (5..30).contains(&r.offset))
        })
        .map(|r| (r.key_str(), (r.partition, r.offset)))
        .collect();
    assert_eq!(expected.len(), 55);
    assert_eq!(backfilled(&db, "reversed@").await, expected);
    assert!(prediction_rows(&db)
        .await
        .iter()
        .filter(|r| r.model.starts_with("reversed@"))
        .all(|r| r.role == "backfill"));
    // The served results stay the live model's.
    assert!(stored_models(&db).await.values().all(|(m, _)| m.starts_with("tiny-bert@")));
    stop_and_audit([&mut worker], &topics, &db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_killed_part_way_resumes_with_no_gap_and_no_duplicate() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    publish(&topics.input, &reviews("k", 600)).await;
    let reversed = tiny_model_reversed("reversed");
    let args = ["--model", path(&reversed), "--rate", "100", "--batch-size", "10"];
    let mut first = start_backfill(&topics, &db, &args);
    wait_until(STEADY, "the backfill under way", || async {
        database_has_table(&db, "predictions").await && backfilled(&db, "reversed@").await.len() >= 50
    })
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let partial = backfilled(&db, "reversed@").await.len();
    assert!(partial < 600, "the backfill was done before it was killed: it proves nothing");

    let (code, out, err) = backfill(&topics, &db, &args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("(resumed)"), "{out}");
    let expected: BTreeSet<(String, (i32, i64))> =
        read_all(&topics.input).iter().map(|r| (r.key_str(), (r.partition, r.offset))).collect();
    let rows = prediction_rows(&db).await;
    assert_eq!(rows.len(), 600, "one row per review, no duplicate");
    assert_eq!(backfilled(&db, "reversed@").await, expected, "no gap");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_from_the_table_promotes_its_results() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    publish(&topics.input, &reviews("t", 150)).await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_all_committed(&topics, STEADY).await;
    stop_and_audit([&mut worker], &topics, &db).await;
    let before = stored_rows(&db).await;

    let reversed = tiny_model_reversed("reversed");
    let (code, out, err) =
        backfill(&topics, &db, &["--model", path(&reversed), "--from-table", "--promote-results", "--rate", "0"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("scored   150 reviews"), "{out}");
    let models = stored_models(&db).await;
    assert_eq!(models.len(), 150);
    assert!(models.values().all(|(m, _)| m.starts_with("reversed@")), "every served result is the new model's");
    assert_eq!(stored_rows(&db).await, before, "same texts, same source positions");
    let expected: BTreeSet<(String, (i32, i64))> =
        before.iter().map(|(id, row)| (id.clone(), (row.partition, row.offset))).collect();
    assert_eq!(backfilled(&db, "reversed@").await, expected);
    audit(&topics, &db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_backfill_command_exits_2_with_the_reason() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    publish(&topics.input, &reviews("x", 20)).await;
    let model = tiny_model();
    let model = path(&model);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--model", "/no/such/model"], "/no/such/model"),
        (vec!["--model", model, "--from-offset", "9:0"], "partition 9 does not exist"),
        (vec!["--model", model, "--to-offset", "0:100000"], "past the partition's end"),
        (vec!["--model", model, "--from-offset", "100000"], "after its end"),
        (vec!["--model", model, "--from-offset", "zero"], "--from-offset `zero`"),
        (vec!["--model", model, "--from-table", "--from-offset", "0"], "cannot be used with"),
        (vec!["--model", model, "--batch-size", "0"], "--batch-size"),
    ];
    for (args, reason) in cases {
        let (code, out, err) = backfill(&topics, &db, &args);
        assert_eq!(code, 2, "{args:?}\n{out}\n{err}");
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

async fn database_has_table(url: &str, table: &str) -> bool {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(url).await else { return false };
    sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(&mut conn)
        .await
        .unwrap_or(false)
}
