#!/usr/bin/env bash
# The soak of the hardening work: 100,000 reviews with poison and edits,
# ten SIGKILLs, a worker joining and one leaving, the broker stopped and
# started, the Postgres cluster stopped for 90 s (tests/tests/soak.rs says what
# it checks). It stops and starts the local services, so nothing else may use
# them meanwhile. About 8 minutes on 2 cores.
#
#   bench/soak.sh [OUT_DIR]     # default out/soak: summary.json, soak.log
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-out/soak}"
mkdir -p "$out"
. scripts/env.sh
scripts/services.sh up
cargo build --workspace --all-targets
SOAK_SUMMARY="$(realpath "$out")/summary.json" \
    cargo test -p bertstream-tests --test soak -- --ignored --nocapture 2>&1 | tee "$out/soak.log"
echo "summary: $(cat "$out/summary.json")"
