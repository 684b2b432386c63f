#!/usr/bin/env bash
# The test command: sets up everything (toolchain, Kafka, Postgres) and runs
# the whole test suite against the real services. `.ci/run` calls exactly this.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh
. scripts/env.sh
scripts/services.sh up
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
