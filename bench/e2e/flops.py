"""The physical ceiling: FLOPs per review of a model on the benchmark data
against the CPU's peak.

    python bench/e2e/flops.py MODEL_DIR DATA.jsonl [--ghz 2.45] [--cores N] [--flop-per-cycle 32]

FLOPs count 2 per multiply-add over the unpadded tokens (truncated to the
model's max length): the encoder's linear layers (Q, K, V, output, two FFN)
per token, attention scores and weighted sum per token pair, pooler and
classifier once; embeddings, softmax, layer norms and GELU are left out (a few %).
Peak: cores x FLOP/cycle x clock. Zen 3 / Zen 2 / Haswell..Ice Lake client
(AVX2 + FMA, two 256-bit FMA pipes): 2 x 8 fp32 lanes x 2 = 32 FLOP/cycle;
with two AVX-512 FMA units it would be 64.
"""
import argparse
import json
import os
from pathlib import Path

from transformers import AutoTokenizer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--ghz", type=float, default=None, help="default: /proc/cpuinfo's current MHz")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("--flop-per-cycle", type=int, default=32)
    a = p.parse_args()
    config = json.loads((Path(a.model) / "config.json").read_text())
    meta = Path(a.model) / "bertstream.json"
    max_len = json.loads(meta.read_text())["max_seq_len"] if meta.exists() else 512
    tok = AutoTokenizer.from_pretrained(a.model)
    lengths = [min(max_len, len(tok(json.loads(l)["text"])["input_ids"])) for l in open(a.data, encoding="utf-8")]
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    mean_l = sum(lengths) / len(lengths)
    mean_l2 = sum(x * x for x in lengths) / len(lengths)
    linear = 2 * layers * (4 * h * h + 2 * h * i) * mean_l
    attention = 2 * layers * 2 * h * mean_l2
    head = 2 * (h * h + h * config.get("num_labels", len(config.get("id2label", {0: 0, 1: 1}))))
    per_review = linear + attention + head
    ghz = a.ghz
    if ghz is None:
        mhz = [float(l.split(":")[1]) for l in open("/proc/cpuinfo") if l.startswith("cpu MHz")]
        ghz = (sum(mhz) / len(mhz) / 1000) if mhz else 2.5
    peak = a.cores * a.flop_per_cycle * ghz * 1e9
    print(json.dumps({
        "model": Path(a.model).name, "reviews": len(lengths), "mean_tokens": round(mean_l, 1),
        "gflop_per_review": round(per_review / 1e9, 3), "peak_gflops": round(peak / 1e9, 1),
        "assumed": f"{a.cores} cores x {a.flop_per_cycle} FLOP/cycle x {ghz:.2f} GHz",
        "ceiling_reviews_per_s": round(peak / per_review, 1),
    }))


if __name__ == "__main__":
    main()
