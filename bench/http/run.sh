#!/usr/bin/env bash
# Single-text POST /v1/classify latency (p50/p99) while the stream is
# backlogged, beside the bare model latency for one text, in the same run;
# prints both and their ratio. Needs the local Kafka and Postgres
# (scripts/services.sh up). The benchmark itself is the ignored test
# tests/tests/http_bench.rs; the worker binary comes from the same profile.
#
#   bench/http/run.sh                       # debug profile (dependencies are built at opt-level 2)
#   PROFILE=release bench/http/run.sh       # release build (minutes the first time)
#   BENCH_MESSAGES=100000 BENCH_REQUESTS=500 BENCH_MODEL_DIR=path/to/model bench/http/run.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
. scripts/env.sh
profile_flag=()
[ "${PROFILE:-debug}" = release ] && profile_flag=(--release)
cargo build -q "${profile_flag[@]}" -p bertstream-worker
cargo test -q "${profile_flag[@]}" -p bertstream-tests --test http_bench -- --ignored --nocapture 2>&1 \
  | grep -E '^(model|backlog|bare|POST|ratio)|panicked|FAILED|error'
