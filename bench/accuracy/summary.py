"""Prints the benchmark's result table from WORK: baseline.json, the
pretrained-then-fine-tuned model's metrics.json (and pretrain.json, seconds.txt)
and, when run with SCRATCH=1, scratch/metrics.json."""

import json
import pathlib
import sys

work = pathlib.Path(sys.argv[1])
baseline = json.loads((work / "baseline.json").read_text())
fit = json.loads((work / "model" / "metrics.json").read_text())
pretrain = json.loads((work / "pretrained" / "pretrain.json").read_text())
total = int((work / "seconds.txt").read_text())


def shape(metrics):
    cfg = metrics["config"]
    return f'{cfg["num_hidden_layers"]}x{cfg["hidden_size"]}, {metrics["parameters"] / 1e6:.1f}M'


rows = [("tfidf char 1-3 + logreg (C=" + str(baseline["C"]) + ")", baseline["test_accuracy"], baseline["test_macro_f1"], baseline["seconds"])]
rows.append((f"bertstream pretrain + fit ({shape(fit)})", fit["test"]["accuracy"], fit["test"]["macro_f1"], total))
scratch = work / "scratch" / "metrics.json"
if scratch.is_file():
    s = json.loads(scratch.read_text())
    rows.append((f"bertstream fit --scratch ({shape(s)})", s["test"]["accuracy"], s["test"]["macro_f1"], s["seconds"]))
print(f'{"model":<44} {"test acc":>9} {"macro-F1":>9} {"seconds":>8}')
for name, acc, f1, secs in rows:
    print(f"{name:<44} {acc:>9.4f} {f1:>9.4f} {secs:>8.0f}")
last = pretrain["history"][-1]
print(f'pretrain: {pretrain["steps"]} steps, {last["epoch"]:.1f} epochs over {pretrain["texts"]} texts, '
      f'masked-LM loss {last["loss"]:.3f}, masked accuracy {last["masked_accuracy"]:.3f}, {pretrain["seconds"]:.0f} s')
teacher = fit.get("teacher_accuracy")
teacher = "" if teacher is None else f", n-gram teacher's out-of-fold accuracy {teacher:.3f}"
print(f'fit: {fit["steps"]} steps, best epoch {fit["best_epoch"]:.2f}, {fit["seconds"]:.0f} s{teacher}; '
      f'test examples {fit["test"]["examples"]}')
verdict = "beats" if fit["test"]["macro_f1"] > baseline["test_macro_f1"] else "does not beat"
print(f'macro-F1: bertstream {fit["test"]["macro_f1"]:.4f} {verdict} the baseline {baseline["test_macro_f1"]:.4f}')
