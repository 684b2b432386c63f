//! The ledger of RELIABILITY.md and the audit every fault test ends with.

use std::collections::{BTreeSet, HashMap};

use crate::db::stored_ids;
use crate::kafka::{committed_offsets, end_offsets, read_all, Record, Topics};
use crate::process::Worker;

/// The ledger of RELIABILITY.md for one run: L1-L5 over the input, the table, the output and the DLQ.
pub struct Ledger {
    pub input: Vec<Record>,
    pub output: Vec<Record>,
    pub dlq: Vec<Record>,
    pub table: Vec<String>,
}

impl Ledger {
    pub async fn collect(topics: &Topics, database_url: &str) -> Self {
        Self {
            input: read_all(&topics.input),
            output: read_all(&topics.output),
            dlq: read_all(&topics.dlq),
            table: stored_ids(database_url).await,
        }
    }

    /// L1: every input id is in exactly one of the table and the DLQ; no id twice in the table.
    pub fn assert_l1(&self) {
        let table: BTreeSet<&String> = self.table.iter().collect();
        assert_eq!(table.len(), self.table.len(), "an id twice in the table");
        let dlq: BTreeSet<(i32, i64)> = self
            .dlq
            .iter()
            .map(|r| {
                (
                    r.headers["source.partition"].parse().expect("partition"),
                    r.headers["source.offset"].parse().expect("offset"),
                )
            })
            .collect();
        for record in &self.input {
            let in_table = table.contains(&record.key_str());
            let in_dlq = dlq.contains(&(record.partition, record.offset));
            assert!(
                in_table != in_dlq,
                "input {}:{} (key {}) table={in_table} dlq={in_dlq}",
                record.partition,
                record.offset,
                record.key_str()
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
/// checks L1, L4 and that everything is committed.
pub async fn audit(topics: &Topics, database_url: &str) -> Ledger {
    let ledger = Ledger::collect(topics, database_url).await;
    ledger.assert_l1();
    ledger.assert_l4();
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
