//! The ledger of RELIABILITY.md and the audit every fault test ends with.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::db::{stored_rows, StoredRow};
use crate::kafka::{committed_offsets, end_offsets, read_all, Record, Topics};
use crate::process::Worker;

/// The ledger of RELIABILITY.md for one run: L1-L6 over the input, the table, the output and the DLQ.
pub struct Ledger {
    pub input: Vec<Record>,
    pub output: Vec<Record>,
    pub dlq: Vec<Record>,
    /// The table's ids, sorted.
    pub table: Vec<String>,
    pub rows: BTreeMap<String, StoredRow>,
}

impl Ledger {
    pub async fn collect(topics: &Topics, database_url: &str) -> Self {
        let rows = stored_rows(database_url).await;
        Self {
            input: read_all(&topics.input),
            output: read_all(&topics.output),
            dlq: read_all(&topics.dlq),
            table: rows.keys().cloned().collect(),
            rows,
        }
    }

    /// Where each DLQ record came from.
    fn dead(&self) -> BTreeSet<(i32, i64)> {
        self.dlq
            .iter()
            .map(|r| {
                (
                    r.headers["source.partition"].parse().expect("partition"),
                    r.headers["source.offset"].parse().expect("offset"),
                )
            })
            .collect()
    }

    /// L1 (with L6): every input message is in exactly one of the table (its
    /// id's row came from it, or from a newer message of its partition, which
    /// supersedes it) and the DLQ.
    pub fn assert_l1(&self) {
        let dead = self.dead();
        for record in &self.input {
            let in_table = self
                .rows
                .get(&record.key_str())
                .is_some_and(|row| row.partition != record.partition || row.offset >= record.offset);
            let in_dlq = dead.contains(&(record.partition, record.offset));
            assert!(
                in_table != in_dlq,
                "input {}:{} (key {}) table={in_table} dlq={in_dlq}",
                record.partition,
                record.offset,
                record.key_str()
            );
        }
    }

    /// L6: each id's row holds its newest input message that is not in the
    /// DLQ, and the last output record of each id is that row's result.
    pub fn assert_l6(&self) {
        let dead = self.dead();
        let mut newest: HashMap<String, (i32, i64)> = HashMap::new();
        for record in self.input.iter().filter(|r| !dead.contains(&(r.partition, r.offset))) {
            let position = newest.entry(record.key_str()).or_insert((record.partition, record.offset));
            *position = (*position).max((record.partition, record.offset));
        }
        for (id, position) in &newest {
            let row = self.rows.get(id).unwrap_or_else(|| panic!("{id}: not stored"));
            assert_eq!((row.partition, row.offset), *position, "{id}: the table holds an older message");
        }
        let mut last: HashMap<String, schemas::ClassificationV1> = HashMap::new();
        for record in &self.output {
            let value = record.value.as_deref().expect("an output value");
            last.insert(record.key_str(), serde_json::from_slice(value).expect("ClassificationV1"));
        }
        for (id, row) in &self.rows {
            let result = last.get(id).unwrap_or_else(|| panic!("{id}: never published"));
            assert_eq!(
                (result.source.partition, result.source.offset),
                (row.partition, row.offset),
                "{id}: the last output record is not the stored result"
            );
        }
    }

    /// L4: the output topic's keys are exactly the table's ids, and the
    /// result of an input message published again repeats its bytes.
    pub fn assert_l4(&self) {
        let keys: BTreeSet<String> = self.output.iter().map(Record::key_str).collect();
        let table: BTreeSet<String> = self.table.iter().cloned().collect();
        assert_eq!(keys, table, "output keys differ from the table's ids");
        let mut first: HashMap<(String, i32, i64), &[u8]> = HashMap::new();
        for record in &self.output {
            let value = record.value.as_deref().expect("an output value");
            let result: schemas::ClassificationV1 = serde_json::from_slice(value).expect("ClassificationV1");
            let source = (result.source.topic, result.source.partition, result.source.offset);
            let earlier = *first.entry(source).or_insert(value);
            assert!(earlier == value, "the result of key {} published again with other bytes", record.key_str());
        }
    }

    /// Output keys published more than once.
    pub fn output_duplicates(&self) -> usize {
        self.output.len() - self.output.iter().map(Record::key_str).collect::<BTreeSet<_>>().len()
    }
}

/// How every fault test ends: each worker is stopped as [`Worker::stop`]
/// does (SIGTERM once it is up; it must exit within 30 s with the code it
/// expects, 0 unless the test said otherwise with [`Worker::expect_exit`]; a
/// worker that has exited already is checked, not signalled again), then the
/// ledger is audited ([`audit`]). The ledger comes back for the test's own
/// assertions.
pub async fn stop_and_audit<'a>(
    workers: impl IntoIterator<Item = &'a mut Worker>,
    topics: &Topics,
    database_url: &str,
) -> Ledger {
    for worker in workers {
        worker.stop();
    }
    audit(topics, database_url).await
}

/// The audit every run ends with (RELIABILITY.md): collects the ledger and
/// checks L1, L4, L6 and that everything is committed.
pub async fn audit(topics: &Topics, database_url: &str) -> Ledger {
    let ledger = Ledger::collect(topics, database_url).await;
    ledger.assert_l1();
    ledger.assert_l4();
    ledger.assert_l6();
    assert_all_committed(topics);
    ledger
}

/// L2/L3: the group has committed the end of every input partition, so a fresh consumer in it reads nothing.
pub fn assert_all_committed(topics: &Topics) {
    let committed = committed_offsets(&topics.input, &topics.group);
    let ends = end_offsets(&topics.input);
    for (partition, end) in ends {
        if end > 0 {
            assert_eq!(committed.get(&partition).copied(), Some(end), "partition {partition}: committed vs end");
        }
    }
}
