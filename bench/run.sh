#!/usr/bin/env bash
# bertstream against the Python peer (bench/peer/peer.py), end to end through
# the same Kafka and Postgres, on the same real reviews, models and thread
# count, in the same run: for each model, the peer then bertstream, each on
# fresh topics, group and database (bench/e2e/e2e.py). Prints per system
# reviews/s (backlog), reviews per CPU-second, p50/p99 end-to-end latency
# (paced at half the peer's throughput, the same rate for both), the model's
# own reviews/s on the same batches and the pipeline efficiency (model time /
# wall time), then the ratio bertstream / peer. About 5-10 minutes on 2 cores.
#
#   bench/run.sh                     # compact (4 x 256) and BERT-base-shaped (12 x 768) random models
#   bench/run.sh --only compact      # one model
#   bench/run.sh --rounds 2          # peer, bertstream, bertstream, peer, ... (drift falls on both)
#   bench/run.sh --threads 1 --no-build --out out/bench-e2e
#
# Options [defaults]: --threads N [cores]; --n-compact N [3000]; --n-base N [200];
# --rounds N [1]; --only compact|base; --out DIR [out/bench-e2e]; --no-build;
# --worker-env NAME=VALUE (repeatable: settings for bertstream only, e.g. MAX_BATCH_TOKENS=4096).
# BERTSTREAM_WORKER=path runs that worker binary instead of target/release's (and skips the build).
# Needs: scripts/env.sh's venv (torch, transformers, confluent-kafka, psycopg,
# cn-clip for the vocabulary: `pip install cn-clip --no-deps`), Kafka and
# Postgres up (scripts/services.sh up), TEST_DATABASE_URL allowed to CREATE DATABASE.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/env.sh

threads="$(nproc)" n_compact=3000 n_base=200 rounds=1 only="" out="out/bench-e2e" build=1
worker_env=()
while (($#)); do
    case "$1" in
        --threads) threads="$2"; shift ;;
        --n-compact) n_compact="$2"; shift ;;
        --n-base) n_base="$2"; shift ;;
        --rounds) rounds="$2"; shift ;;
        --only) only="$2"; shift ;;
        --out) out="$2"; shift ;;
        --no-build) build=0 ;;
        --worker-env) worker_env+=(--env "$2"); shift ;;
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
if ((build)) && [[ -z ${BERTSTREAM_WORKER:-} ]]; then
    cargo build --release -q -p bertstream-worker
fi
"$PY" -c 'import cn_clip' 2>/dev/null || "$PY" -m pip install -q cn-clip --no-deps
"$PY" bench/e2e/make_models.py .cache/bench-models
data=.cache/bench/reviews.jsonl
[[ -s $data ]] || { mkdir -p .cache/bench && "$PY" bench/e2e/make_data.py "$data" 6000; }

{ echo "date: $(date -Is)"; echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores";
  echo "flags: $(grep -o -w -E 'avx2|fma|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')";
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"; echo "threads: $threads"; } | tee "$out/machine.txt"

run() { # system model n [--rate R]
    local system=$1 model=$2 n=$3; shift 3
    local extra=()
    [[ $system == bertstream ]] && extra=("${worker_env[@]}")
    "$PY" bench/e2e/e2e.py --system "$system" --model ".cache/bench-models/$model" --data "$data" --n "$n" \
        --paced-seconds 15 --threads "$threads" --label "$model" --json "$results" "$@" "${extra[@]}" >/dev/null
    tail -n 1 "$results" >&2
}

for model in compact base; do
    [[ -z $only || $only == "$model" ]] || continue
    n=$([[ $model == compact ]] && echo "$n_compact" || echo "$n_base")
    # Latency is measured at one rate for both: half the peer's throughput in
    # the first round (the peer runs first there), so both keep up.
    rate=""
    for ((r = 1; r <= rounds; r++)); do
        if ((r % 2)); then order=(peer bertstream); else order=(bertstream peer); fi
        for system in "${order[@]}"; do
            if [[ -z $rate ]]; then
                run "$system" "$model" "$n" --rate-fraction 0.5
                rate=$(tail -n 1 "$results" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rate"])')
            else
                run "$system" "$model" "$n" --rate "$rate"
            fi
        done
    done
done
"$PY" bench/e2e/summary.py "$results" | tee "$out/table.md"
