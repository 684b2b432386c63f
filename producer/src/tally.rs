//! What a run did: the sender fills a [`Tally`], the progress bar and the
//! summary read it, and [`Stop`] says why a run ended before its input did.

/// Why a run ended before the input did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// --strict met a bad line.
    BadLine,
    Fatal(String),
    Interrupted,
}

/// What happened to the messages of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Delivered (acknowledged by the broker).
    pub sent: u64,
    pub failed: u64,
    /// Bad lines skipped.
    pub skipped: u64,
    /// JSON bytes delivered.
    pub payload_bytes: u64,
    pub stopped: Option<Stop>,
}
