#!/usr/bin/env bash
# What the model lifecycle costs the live stream (docs/models.md), in one run
# on one machine, each figure a ratio against the plain stream measured in
# the same round (bench/e2e/e2e.py, bertstream only, compact 4 x 256 model):
#
#   plain        the stream alone: backlog reviews/s, then latency paced at a
#                third of that (a rate the stream keeps up with in small batches)
#   shadow10     SHADOW_SAMPLE=0.1 (a second compact model as the shadow)
#   shadow100    SHADOW_SAMPLE=1
#   swap         a hot swap a third of the way through the backlog: the
#                longest gap between batches around it, in median batch gaps
#   backfill     `backfill --rate R` over the scored backlog during the paced
#                phase: paced p50/p99 latency against plain's at the same rate
#
#   bench/models.sh [--rounds 2] [--n 3000] [--backfill-rate 50] [--out out/bench-models] [--no-build]
#
# About 6 minutes a round on 2 cores. Needs what bench/run.sh needs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/env.sh

rounds=2 n=3000 backfill_rate=50 out="out/bench-models" build=1
while (($#)); do
    case "$1" in
        --rounds) rounds="$2"; shift ;;
        --n) n="$2"; shift ;;
        --backfill-rate) backfill_rate="$2"; shift ;;
        --out) out="$2"; shift ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

PY="$ROOT/.venv/bin/python"
mkdir -p "$out"
export BENCH_LOG_DIR="$out"
results="$out/results.jsonl"
: > "$results"
((build)) && [[ -z ${BERTSTREAM_WORKER:-} ]] && cargo build --release -q -p bertstream-worker
"$PY" -c 'import cn_clip' 2>/dev/null || "$PY" -m pip install -q cn-clip --no-deps
"$PY" bench/e2e/make_models.py .cache/bench-models
# The candidate: the same shapes under another name (another model id).
candidate=.cache/bench-models/compact-candidate
[[ -d $candidate ]] || cp -r .cache/bench-models/compact "$candidate"
data=.cache/bench/reviews.jsonl
[[ -s $data ]] || { mkdir -p .cache/bench && "$PY" bench/e2e/make_data.py "$data" 6000; }
{ echo "date: $(date -Is)"; echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores";
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"; } | tee "$out/machine.txt"

run() { # label [e2e.py options]
    local label=$1; shift
    "$PY" bench/e2e/e2e.py --system bertstream --model .cache/bench-models/compact --data "$data" --n "$n" \
        --paced-seconds 15 --label "$label" --json "$results" "$@" >/dev/null
    tail -n 1 "$results" >&2
}

rate=""
for ((r = 1; r <= rounds; r++)); do
    if [[ -z $rate ]]; then
        run plain --rate-fraction 0.33
        rate=$(tail -n 1 "$results" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rate"])')
    else
        run plain --rate "$rate"
    fi
    run shadow10 --rate "$rate" --env SHADOW_MODEL_DIR="$candidate" --env SHADOW_SAMPLE=0.1
    run shadow100 --rate "$rate" --env SHADOW_MODEL_DIR="$candidate" --env SHADOW_SAMPLE=1
    run swap --rate "$rate" --swap-to "$candidate"
    run backfill --rate "$rate" --backfill-model "$candidate" --backfill-rate "$backfill_rate"
done
"$PY" bench/models/summary.py "$results" | tee "$out/table.md"
