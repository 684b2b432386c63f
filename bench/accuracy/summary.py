"""Prints the benchmark's result table from WORK/model/metrics.json and WORK/baseline.json."""

import json
import pathlib
import sys

work = pathlib.Path(sys.argv[1])
fit = json.loads((work / "model" / "metrics.json").read_text())
baseline = json.loads((work / "baseline.json").read_text())
cfg = fit["config"]
shape = f'{cfg["num_hidden_layers"]} layers x {cfg["hidden_size"]}, {fit["parameters"] / 1e6:.1f}M params'
print(f'{"model":<40} {"test acc":>9} {"macro-F1":>9} {"seconds":>8}')
print(f'{"tfidf char 1-3 + logreg (C=" + str(baseline["C"]) + ")":<40} {baseline["test_accuracy"]:>9.4f} {baseline["test_macro_f1"]:>9.4f} {baseline["seconds"]:>8.0f}')
print(f'{"bertstream scratch (" + shape + ")":<40} {fit["test"]["accuracy"]:>9.4f} {fit["test"]["macro_f1"]:>9.4f} {fit["seconds"]:>8.0f}')
print(f'test examples: {fit["test"]["examples"]}; fit steps {fit["steps"]}, best epoch {fit["best_epoch"]:.2f}'
      f'{", stopped by time budget" if fit["stopped_by_time_budget"] else ""}')
