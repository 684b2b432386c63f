# Source this file (`. scripts/env.sh`) to get what building and running
# bertstream needs: the project venv first on PATH and libtorch for tch.
# Run scripts/bootstrap.sh once first.
_bs_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export BERTSTREAM_ROOT="$_bs_root"
export VIRTUAL_ENV="$_bs_root/.venv"
case ":$PATH:" in *":$VIRTUAL_ENV/bin:"*) ;; *) export PATH="$VIRTUAL_ENV/bin:$PATH" ;; esac
# tch builds against the venv's torch (same libtorch as `import torch`); the
# binaries get an rpath to it (model/build.rs, passed on to the build.rs of
# train, worker and tests), so they run from any shell.
export LIBTORCH="$(echo "$VIRTUAL_ENV"/lib/python3*/site-packages/torch)"
# Local services (scripts/services.sh); point these elsewhere to use your own.
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
export DATABASE_URL="${DATABASE_URL:-postgres://bertstream:bertstream@127.0.0.1:5432/bertstream?sslmode=disable}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://bertstream:bertstream@127.0.0.1:5432/bertstream_test?sslmode=disable}"
unset _bs_root
