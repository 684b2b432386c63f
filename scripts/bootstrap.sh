#!/usr/bin/env bash
# Installs everything bertstream needs to build, test and run the demo, once.
# Idempotent: each step leaves a stamp and a second run takes seconds.
#   - Debian packages: cmake and libcurl headers (bundled librdkafka), PostgreSQL,
#     Chromium (browser tests)
#   - .venv with torch==2.11.0 (the libtorch that tch 0.24 is built for) and the
#     Python tools used by fixtures, benchmarks and the demo data
#   - the Apache Kafka jars, resolved by Maven into .cache/kafka
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/versions.sh

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages -------------------------------------------------------
need_pkgs=()
for p in cmake libcurl4-openssl-dev postgresql chromium openjdk-17-jre-headless maven docker-compose curl fonts-dejavu-core fonts-wqy-microhei; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
command -v npm >/dev/null || need_pkgs+=(nodejs npm)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    log "installing Debian packages: ${need_pkgs[*]}"
    sudo_ apt-get update -qq
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    log "missing packages ${need_pkgs[*]} and no apt-get: install them by hand"; exit 1
  fi
fi

# --- Python virtualenv with torch -----------------------------------------
py_stamp=".venv/.bertstream-$(sha256sum scripts/versions.sh scripts/requirements.txt | sha256sum | cut -c1-12)"
if [ ! -f "$py_stamp" ]; then
  log "creating .venv with torch==$TORCH_VERSION (about 5 GB, a few minutes the first time)"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # No pip cache and a temp dir beside the venv: torch and its CUDA wheels are
  # gigabytes, and a cached copy or a small /tmp would double what the disk needs.
  mkdir -p .cache/pip-tmp
  export TMPDIR="$root/.cache/pip-tmp" PIP_NO_CACHE_DIR=1
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q "torch==$TORCH_VERSION" -r scripts/requirements.txt
  rm -rf .cache/pip-tmp
  unset TMPDIR
  rm -f .venv/.bertstream-*
  touch "$py_stamp"
fi

# --- Kafka jars ------------------------------------------------------------
if [ ! -f ".cache/kafka/$KAFKA_VERSION/.done" ]; then
  log "resolving Apache Kafka $KAFKA_VERSION jars with Maven"
  mkdir -p ".cache/kafka/$KAFKA_VERSION"
  mvn -q -B dependency:copy-dependencies -f scripts/kafka-pom.xml \
    -Dkafka.version="$KAFKA_VERSION" -DoutputDirectory="$root/.cache/kafka/$KAFKA_VERSION/libs" \
    -DincludeScope=runtime
  touch ".cache/kafka/$KAFKA_VERSION/.done"
fi
# --- Browser test packages (playwright-core; Chromium itself is Debian's) ---
npm_stamp="tests/browser/node_modules/.bertstream-$(sha256sum tests/browser/package-lock.json | cut -c1-12)"
if [ ! -f "$npm_stamp" ]; then
  log "installing the browser test's npm packages (npm ci in tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  touch "$npm_stamp"
fi
log "toolchain ready"
