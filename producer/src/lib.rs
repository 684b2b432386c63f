//! Publishes reviews to Kafka (see issue: producer).
