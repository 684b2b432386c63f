"""Markdown table from bench/e2e/e2e.py results (JSON lines): per model and
system the median over rounds, then bertstream / peer ratios.

    python bench/e2e/summary.py out/bench-e2e/results.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

COLUMNS = [
    ("reviews_per_s", "reviews/s"),
    ("reviews_per_cpu_s", "reviews/CPU-s"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("rate", "paced at /s"),
    ("mean_batch", "mean batch"),
    ("model_reviews_per_s", "model-only reviews/s"),
    ("efficiency", "e2e / model-only"),
]


def main() -> None:
    runs = defaultdict(list)
    for line in open(sys.argv[1]):
        r = json.loads(line)
        runs[(r["label"], r["system"])].append(r)
    med = {}
    print("| model | system | runs | " + " | ".join(h for _, h in COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    for (model, system), rs in sorted(runs.items()):
        row = {k: statistics.median([r[k] for r in rs if k in r]) for k, _ in COLUMNS if any(k in r for r in rs)}
        med[(model, system)] = row
        cells = [f"{row[k]:g}" if k in row else "" for k, _ in COLUMNS]
        print(f"| {model} | {system} | {len(rs)} | " + " | ".join(cells) + " |")
    print()
    for model in sorted({m for m, _ in runs}):
        b, p = med.get((model, "bertstream")), med.get((model, "peer"))
        if not (b and p):
            continue
        parts = [f"{model}: bertstream / peer = {b['reviews_per_s'] / p['reviews_per_s']:.2f}x reviews/s",
                 f"{b['reviews_per_cpu_s'] / p['reviews_per_cpu_s']:.2f}x reviews/CPU-s"]
        if "p50_ms" in b and "p50_ms" in p:
            parts.append(f"p50 {p['p50_ms'] / max(b['p50_ms'], 1):.1f}x lower, p99 {p['p99_ms'] / max(b['p99_ms'], 1):.1f}x lower")
        parts.append(f"bertstream efficiency {b['efficiency']:.2f} (goal >= 0.9)")
        print("- " + "; ".join(parts))


if __name__ == "__main__":
    main()
