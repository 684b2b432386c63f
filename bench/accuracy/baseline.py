"""The baseline of the accuracy benchmark: TF-IDF over character 1-3-grams
and logistic regression (scikit-learn), trained on train.tsv (C chosen on
dev.tsv) and scored on test.tsv. Prints one JSON line: accuracy, macro-F1 and
each label's F1 on test (the cross-validation run reads the last per fold).

    python bench/accuracy/baseline.py SPLIT_DIR
"""

import json
import pathlib
import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score


def read(path):
    labels, texts = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if i == 0 and line.startswith("label\t"):
            continue
        label, text = line.split("\t", 1)
        labels.append(label)
        texts.append(text)
    return labels, texts


def main():
    split = pathlib.Path(sys.argv[1])
    (y_train, x_train), (y_dev, x_dev), (y_test, x_test) = (read(split / f) for f in ("train.tsv", "dev.tsv", "test.tsv"))
    started = time.time()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    train = vectorizer.fit_transform(x_train)
    best = None
    for c in (1.0, 3.0, 10.0, 30.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(train, y_train)
        dev_f1 = f1_score(y_dev, model.predict(vectorizer.transform(x_dev)), average="macro")
        if best is None or dev_f1 > best[0]:
            best = (dev_f1, c, model)
    _, c, model = best
    predicted = model.predict(vectorizer.transform(x_test))
    labels = sorted(set(y_train))  # string order, as bertstream-train orders labels
    print(json.dumps({
        "model": "tfidf-char-1-3+logreg",
        "C": c,
        "test_accuracy": round(accuracy_score(y_test, predicted), 4),
        "test_macro_f1": round(f1_score(y_test, predicted, average="macro"), 4),
        "test_f1_per_class": dict(zip(labels, (round(f, 4) for f in f1_score(y_test, predicted, labels=labels, average=None)))),
        "seconds": round(time.time() - started, 1),
    }))


if __name__ == "__main__":
    main()
