"""Prints the cross-validation table of the accuracy benchmark from WORK
(folds.json, and per fold baseline.json, model/metrics.json,
pretrained/pretrain.json, seconds.txt) and writes it to WORK/cv.json and
WORK/cv.md: each fold's test accuracy, macro-F1 and per-label F1 for both
systems, then the mean ± sample standard deviation over folds, and the
per-fold difference, which is the fairer noise measure since both systems
are scored on the same folds.

    python bench/accuracy/cv_summary.py WORK
"""

import json
import pathlib
import statistics
import sys

work = pathlib.Path(sys.argv[1])
folds = json.loads((work / "folds.json").read_text())
SYSTEMS = ("baseline", "bertstream")
NAMES = {"baseline": "tfidf char 1-3 + logreg", "bertstream": "bertstream pretrain + fit"}

rows = []
for n in range(1, folds["folds"] + 1):
    d = work / f"fold-{n}"
    base = json.loads((d / "baseline.json").read_text().strip().splitlines()[-1])
    fit = json.loads((d / "model" / "metrics.json").read_text())
    pre = json.loads((d / "pretrained" / "pretrain.json").read_text())
    if fit.get("teacher_accuracy") is not None:
        fit["teacher_accuracy"] = round(fit["teacher_accuracy"], 4)
    rows.append({
        "fold": n,
        "test_examples": fit["test"]["examples"],
        "baseline": {"accuracy": base["test_accuracy"], "macro_f1": base["test_macro_f1"],
                     "f1": base["test_f1_per_class"], "seconds": base["seconds"], "C": base["C"]},
        "bertstream": {"accuracy": round(fit["test"]["accuracy"], 4), "macro_f1": round(fit["test"]["macro_f1"], 4),
                       "f1": {c["label"]: round(c["f1"], 4) for c in fit["test"]["per_class"]},
                       "seconds": int((d / "seconds.txt").read_text()),
                       "pretrain_steps": pre["steps"], "pretrain_epochs": round(pre["history"][-1]["epoch"], 2),
                       "masked_accuracy": round(pre["history"][-1]["masked_accuracy"], 3),
                       "best_epoch": round(fit["best_epoch"], 2), "teacher_accuracy": fit.get("teacher_accuracy")},
    })
labels = sorted({label for r in rows for s in SYSTEMS for label in r[s]["f1"]})
METRICS = ["accuracy", "macro_f1"] + [f"f1[{label}]" for label in labels]


def value(result, metric):
    return result["f1"].get(metric[3:-1], 0.0) if metric.startswith("f1[") else result[metric]


def spread(values):
    return {"mean": round(statistics.mean(values), 4), "std": round(statistics.stdev(values), 4)}


summary = {s: {m: spread([value(r[s], m) for r in rows]) for m in METRICS} for s in SYSTEMS}
summary["difference"] = {m: spread([value(r["bertstream"], m) - value(r["baseline"], m) for r in rows]) for m in METRICS}
wins = sum(r["bertstream"]["macro_f1"] > r["baseline"]["macro_f1"] for r in rows)
out = {"data": folds["data"], "folds": folds["folds"], "seed": folds["seed"], "dev_share": folds["dev_share"],
       "examples": folds["kept"], "per_fold": rows, "mean_std": summary, "bertstream_macro_f1_wins": wins}
(work / "cv.json").write_text(json.dumps(out, indent=1) + "\n")

header = ["fold", "model"] + [m.replace("_", "-") for m in METRICS] + ["seconds"]
table = [header]
for r in rows:
    for s in SYSTEMS:
        table.append([str(r["fold"]), NAMES[s]] + [f"{value(r[s], m):.4f}" for m in METRICS] + [f'{r[s]["seconds"]:.0f}'])
for s in SYSTEMS + ("difference",):
    name = NAMES.get(s, "bertstream - baseline")
    table.append(["mean ± std", name] + [f'{summary[s][m]["mean"]:.4f} ± {summary[s][m]["std"]:.4f}' for m in METRICS] + [""])
widths = [max(len(row[i]) for row in table) for i in range(len(header))]
print(f'{folds["data"]}: {folds["kept"]} texts, {folds["folds"]}-fold cross-validation (seed {folds["seed"]}); '
      f'test F1 per label, std over folds (n-1)')
for row in table:
    print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
for r in rows:
    b = r["bertstream"]
    teacher = "" if b["teacher_accuracy"] is None else f', n-gram teacher {b["teacher_accuracy"]:.3f}'
    print(f'fold {r["fold"]}: {r["test_examples"]} test texts; pretrain {b["pretrain_steps"]} steps '
          f'({b["pretrain_epochs"]} epochs, masked accuracy {b["masked_accuracy"]}), fit best epoch {b["best_epoch"]}'
          f'{teacher}; baseline C={r["baseline"]["C"]}')
d = summary["difference"]["macro_f1"]
print(f'macro-F1: bertstream {summary["bertstream"]["macro_f1"]["mean"]:.4f} against the baseline\'s '
      f'{summary["baseline"]["macro_f1"]["mean"]:.4f} (difference {d["mean"]:+.4f} ± {d["std"]:.4f}), '
      f'higher in {wins} of {len(rows)} folds')
with open(work / "cv.md", "w", encoding="utf-8") as f:
    f.write(f'{folds["data"]}: {folds["kept"]} texts, {folds["folds"]}-fold cross-validation, seed {folds["seed"]}\n\n')
    f.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
    f.writelines("| " + " | ".join(row) + " |\n" for row in table[1:])
print(f"wrote {work / 'cv.json'} and {work / 'cv.md'}")
