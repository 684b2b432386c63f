#!/usr/bin/env bash
# The test command: sets up everything (toolchain, Kafka, Postgres) and runs
# the whole test suite against the real services, after the format and lint
# checks. `.ci/run` calls exactly this.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh
. scripts/env.sh
scripts/services.sh up
# Style first: formatted as rustfmt.toml says, and no clippy warning.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
