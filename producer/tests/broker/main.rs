//! End-to-end tests of `bertstream-produce` against the real broker at
//! `$KAFKA_BROKERS` (default 127.0.0.1:9092; `scripts/services.sh up` starts
//! one). Each test makes its own randomly named topic and reads it back from
//! the beginning.

mod bad_lines;
mod failures;
mod publish;
mod rate;
mod support;
