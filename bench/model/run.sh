#!/usr/bin/env bash
# Forward throughput of the model crate beside PyTorch (transformers), same
# shapes and threads, in the same run: builds `forward_bench` in release, runs
# it and bench/model/torch_forward.py interleaved (round 1: bertstream then
# PyTorch, round 2: PyTorch then bertstream, ...) so that drift on a shared
# machine falls on both, and prints per shape the median over rounds of each
# side's sequences/s and the ratio bertstream / PyTorch (goal: >= 0.95).
#
#   bench/model/run.sh                 # BERT-base shape (12 x 768, vocab 21128), 32x64 and 32x128
#   bench/model/run.sh --small         # 4 layers, hidden 256: a quick run
#   bench/model/run.sh --threads 1 --rounds 3 --iters 10 --out out/bench-model
#   bench/model/run.sh --device cuda --dtype fp16 --shapes 1x64,64x64 --no-build
#   bench/model/run.sh --model DIR --plan PLAN    # one model's weights, batches of real lengths
#
# Options (defaults in brackets):
#   --small               4 layers, hidden 256, 4 heads, intermediate 1024
#   --threads N           intra-op threads for both sides [number of cores]
#   --shapes LIST         comma-separated BATCHxLEN [32x64,32x128]
#   --warmup N --iters N  untimed and timed passes per shape and run [1, 5]
#   --rounds N            runs of each side, interleaved [2]
#   --device D            cpu, cuda, cuda:N [cpu]
#   --dtype D             fp32, fp16 (CUDA), bf16 [fp32];  --fp16  the same as --dtype fp16
#   --model DIR           both sides load this model directory (its shape and weights)
#   --plan FILE           batches of real token lengths instead of --shapes
#                         (torch_forward.py --make-plan writes one)
#   --mask                fixed shapes get an all-ones attention mask (the cost of a mask)
#   --attn sdpa|eager     transformers' attention path [sdpa, its default]
#   --out DIR             keep raw.jsonl, table.md, summary.json and machine.txt there
#   --no-build            use the binary as it is (BIN=path overrides where it is)
# Environment: PYTHON (default .venv/bin/python, else python3), BIN, CARGO_TARGET_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/model"

args_given="$*"
threads="$(nproc)"
shapes="32x64,32x128"
warmup=1 iters=5 rounds=2
device=cpu dtype=fp32 attn=sdpa out="" build=1
model=()

while (($#)); do
    case "$1" in
        --small) model=(--layers 4 --hidden 256 --heads 4 --intermediate 1024) ;;
        --threads) threads="$2"; shift ;;
        --shapes) shapes="$2"; shift ;;
        --warmup) warmup="$2"; shift ;;
        --iters) iters="$2"; shift ;;
        --rounds) rounds="$2"; shift ;;
        --device) device="$2"; shift ;;
        --fp16) dtype=fp16 ;;
        --dtype) dtype="$2"; shift ;;
        --model) model+=(--model "$2"); shift ;;
        --plan) model+=(--plan "$2"); shift ;;
        --mask) model+=(--mask) ;;
        --attn) attn="$2"; shift ;;
        --out) out="$2"; shift ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
BIN="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/forward_bench}"

if ((build)); then
    # shellcheck disable=SC1091
    [[ -f "$ROOT/scripts/env.sh" && -d "$ROOT/.venv" ]] && . "$ROOT/scripts/env.sh"
    (cd "$ROOT" && cargo build --release -p bertstream-model --example forward_bench) >&2
fi
[[ -x "$BIN" ]] || { echo "run.sh: no binary at $BIN (build it, or set BIN)" >&2; exit 1; }

work="${out:-$(mktemp -d)}"
mkdir -p "$work"
raw="$work/raw.jsonl"
: >"$raw"

common=(--device "$device" --dtype "$dtype" --threads "$threads" --shapes "$shapes"
        --warmup "$warmup" --iters "$iters" "${model[@]}")

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(hostname); cores: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- model/src 2>/dev/null || echo ' (model/src modified)')"
    echo "python: $PYTHON ($("$PYTHON" -c 'import torch; print("torch", torch.__version__)'))"
    echo "command: bench/model/run.sh $args_given -> ${common[*]} rounds=$rounds attn=$attn"
} >"$work/machine.txt"
cat "$work/machine.txt" >&2

run_rust() { "$BIN" "${common[@]}" | tee -a "$raw" >&2; }
run_python() { "$PYTHON" "$HERE/torch_forward.py" "${common[@]}" --attn "$attn" | tee -a "$raw" >&2; }

for ((r = 1; r <= rounds; r++)); do
    echo "round $r/$rounds" >&2
    if ((r % 2)); then run_rust; run_python; else run_python; run_rust; fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$work/machine.txt" >&2

python3 "$HERE/summarize.py" "$raw" --markdown --json "$work/summary.json" >"$work/table.md"
python3 "$HERE/summarize.py" "$raw"
[[ -n "$out" ]] && echo "results in $work" >&2 || rm -rf "$work"
