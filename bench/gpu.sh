#!/usr/bin/env bash
# The model crate on a GPU machine: forward throughput (fp32, fp16) of
# bertstream beside PyTorch at batch sizes 1..256 and lengths 64 and 128, on a
# BERT-base-shaped random model, and the parity tests on CUDA.
#
# Two steps, because the GPU machine has no network and no Rust toolchain:
#
# 1. Here (a build machine with the project's .venv), build CUDA-capable
#    binaries and stage them, stripped, into out/gpu-bin (about 30 MB):
#
#        bench/gpu.sh build
#
#    which runs, with `. scripts/env.sh` and BERTSTREAM_CUDA=1 (model/build.rs
#    then links libtorch with --no-as-needed, so libtorch_cuda is kept and CUDA
#    is seen), in its own target dir (CUDA_TARGET_DIR, default target/cuda, so
#    that the flag does not flip back and forth in the shared one):
#
#        cargo build --release -p bertstream-model --example forward_bench
#        cargo test  --release -p bertstream-model --test parity --no-run
#
# 2. On the GPU machine, with the repository copied over and out/gpu-bin
#    carried with it (it is git-ignored), and torch 2.11.0 (+cu130) importable
#    by python3 there:
#
#        OUT=/some/dir bench/gpu.sh            # or: bench/gpu.sh run
#
#    It finds libtorch through python3's torch (LD_LIBRARY_PATH), since the
#    binaries' rpath points at this machine's .venv. PyTorch's side uses
#    transformers if python3 can import it, else the plain-PyTorch BERT in
#    bench/model/torch_forward.py (its JSON says "pytorch-plain").
#
# Writes to $OUT (default out/gpu): machine.txt, parity.log, forward-fp32/ and
# forward-fp16/ (raw.jsonl, table.md, summary.json each), results.md and
# results.json (everything in one place). A failing part is recorded there and
# the rest still runs; the exit status is non-zero if anything failed.
#
# Knobs (environment): BIN_DIR [out/gpu-bin], PYTHON [python3],
# SEQ_LENS ["64 128"], BATCHES ["1 2 4 8 16 32 64 128 256"], WARMUP [5],
# ITERS [20], ROUNDS [2], DEVICE [cuda:0], DTYPES ["fp32 fp16"], RUN_ARGS
# (more bench/model/run.sh options, e.g. --small). A dry run of the script's
# logic on a CPU machine:
#   DEVICE=cpu DTYPES=fp32 SEQ_LENS=16 BATCHES="1 2" ROUNDS=1 RUN_ARGS=--small \
#     PYTHON=.venv/bin/python OUT=/tmp/gpu-dry bench/gpu.sh
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${BIN_DIR:-$ROOT/out/gpu-bin}"

build() {
    set -e
    cd "$ROOT"
    # shellcheck disable=SC1091
    . scripts/env.sh
    export BERTSTREAM_CUDA=1 CARGO_TARGET_DIR="${CUDA_TARGET_DIR:-$ROOT/target/cuda}"
    cargo build --release -p bertstream-model --example forward_bench
    local parity
    parity="$(cargo test --release -p bertstream-model --test parity --no-run --message-format=json \
        | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "parity":
        print(m["executable"])' | tail -1)"
    [[ -x "$parity" ]] || { echo "gpu.sh: no parity test binary found" >&2; exit 1; }
    mkdir -p "$BIN_DIR"
    strip -o "$BIN_DIR/forward_bench" "$CARGO_TARGET_DIR/release/examples/forward_bench"
    strip -o "$BIN_DIR/parity" "$parity"
    # The parity tests find their fixture through the absolute path baked in at build time.
    echo "$ROOT" >"$BIN_DIR/BUILD_ROOT"
    git rev-parse --short HEAD >"$BIN_DIR/GIT_REV" 2>/dev/null || true
    du -sh "$BIN_DIR"/* >&2
    echo "staged in $BIN_DIR: carry ${BIN_DIR#"$ROOT"/} to the GPU machine" >&2
}

run() {
    local out="${OUT:-$ROOT/out/gpu}" python="${PYTHON:-python3}" device="${DEVICE:-cuda:0}"
    local failed=()
    mkdir -p "$out"
    [[ -x "$BIN_DIR/forward_bench" ]] || { echo "gpu.sh: no $BIN_DIR/forward_bench: run 'bench/gpu.sh build' first and carry it" >&2; exit 1; }

    local torch_lib
    torch_lib="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" \
        || { echo "gpu.sh: $python cannot import torch" >&2; exit 1; }
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

    {
        echo "date: $(date -u +%FT%TZ)"
        echo "host: $(hostname); cores: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
        echo "binaries: built at $(cat "$BIN_DIR/GIT_REV" 2>/dev/null || echo '?')"
        "$python" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
        "$python" -c 'import transformers; print("transformers", transformers.__version__)' 2>/dev/null \
            || echo "transformers: not importable; PyTorch side = plain-PyTorch BERT (pytorch-plain)"
    } | tee "$out/machine.txt"

    # Does the Rust binary see CUDA? (A build without BERTSTREAM_CUDA=1 does not.)
    if "$BIN_DIR/forward_bench" --device "$device" --layers 1 --hidden 64 --heads 1 --intermediate 64 \
        --shapes 1x8 --warmup 0 --iters 1 >"$out/cuda-check.log" 2>&1; then
        echo "bertstream sees $device" | tee -a "$out/machine.txt"
    else
        echo "bertstream does NOT see $device: $(tail -1 "$out/cuda-check.log")" | tee -a "$out/machine.txt"
        failed+=("cuda-check")
    fi

    # Parity tests: LoadOptions::default() is device `auto`, so on a GPU host they run on CUDA.
    if [[ -x "$BIN_DIR/parity" ]]; then
        local build_root
        build_root="$(cat "$BIN_DIR/BUILD_ROOT" 2>/dev/null || echo "$ROOT")"
        if [[ ! -e "$build_root" ]]; then
            mkdir -p "$(dirname "$build_root")" && ln -s "$ROOT" "$build_root" \
                || echo "gpu.sh: cannot link $build_root to $ROOT; the parity fixture will be missing" >&2
        fi
        if (cd "$ROOT" && "$BIN_DIR/parity" --test-threads 1) >"$out/parity.log" 2>&1; then
            echo "parity: passed ($(grep -m1 '^test result' "$out/parity.log"))" | tee -a "$out/machine.txt"
        else
            echo "parity: FAILED (see parity.log)" | tee -a "$out/machine.txt"
            failed+=("parity")
        fi
    else
        echo "parity: no binary in $BIN_DIR, skipped" | tee -a "$out/machine.txt"
    fi

    local shapes="" len batch
    for len in ${SEQ_LENS:-64 128}; do
        for batch in ${BATCHES:-1 2 4 8 16 32 64 128 256}; do shapes+="${shapes:+,}${batch}x${len}"; done
    done
    local dtype flag
    for dtype in ${DTYPES:-fp32 fp16}; do
        flag=(); [[ $dtype == fp16 ]] && flag=(--fp16)
        echo "forward $dtype on $device: $shapes" >&2
        if ! BIN="$BIN_DIR/forward_bench" PYTHON="$python" "$ROOT/bench/model/run.sh" --no-build \
            --device "$device" "${flag[@]}" --shapes "$shapes" --threads "$(nproc)" \
            --warmup "${WARMUP:-5}" --iters "${ITERS:-20}" --rounds "${ROUNDS:-2}" \
            ${RUN_ARGS:-} --out "$out/forward-$dtype" 2>"$out/forward-$dtype.log"; then
            echo "forward $dtype: FAILED (see forward-$dtype.log)" | tee -a "$out/machine.txt"
            failed+=("forward-$dtype")
        fi
    done

    {
        echo "# bertstream model crate on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
        echo
        echo '```'; cat "$out/machine.txt"; echo '```'
        for dtype in ${DTYPES:-fp32 fp16}; do
            echo
            echo "## Forward throughput, $dtype (${RUN_ARGS:-BERT-base shape, vocab 21128}; sequences/s, median over rounds)"
            echo
            cat "$out/forward-$dtype/table.md" 2>/dev/null || echo "(failed: see forward-$dtype.log)"
        done
    } >"$out/results.md"
    "$python" - "$out" <<'EOF' || true
import json, os, sys
out = sys.argv[1]
res = {"machine": open(os.path.join(out, "machine.txt")).read().splitlines(), "forward": {}}
for d in sorted(os.listdir(out)):
    p = os.path.join(out, d, "summary.json")
    if d.startswith("forward-") and os.path.exists(p):
        res["forward"][d[len("forward-"):]] = json.load(open(p))
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=1)
EOF
    cat "$out/results.md"
    if ((${#failed[@]})); then echo "gpu.sh: failed: ${failed[*]}" >&2; return 1; fi
}

case "${1:-run}" in
    build) build ;;
    run) run ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) echo "usage: bench/gpu.sh [build|run]" >&2; exit 2 ;;
esac
