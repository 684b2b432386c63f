#!/usr/bin/env bash
# Checks the deployment files, and fails on the first problem:
#   - the Helm chart deploy/helm/bertstream: `helm lint`, then `helm template`
#     validated by `kubeconform -strict` (unknown fields are errors) against
#     the Kubernetes schemas of the oldest and newest versions it supports and
#     KEDA's, for each values file (the defaults, values-local.yaml, ci/*.yaml);
#   - the manifests of a local try (deploy/local/*.yaml), likewise;
#   - docker-compose.yml: `docker-compose config -q`, with and without the
#     demo profile.
# Tools: helm and kubeconform are built from the Go module proxy into
# .cache/deploy/bin the first time (needs Go; about 5 minutes on 2 cores,
# seconds afterwards); the Kubernetes schemas come from a PyPI package, pinned
# by hash (deploy/schemas/README.md); docker-compose is Debian's package.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

HELM_VERSION=v4.3.2
KUBECONFORM_VERSION=v0.8.0
# Oldest and newest Kubernetes the chart is validated against (Chart.yaml's kubeVersion is the oldest).
KUBE_VERSIONS=(1.29.0 1.37.0)

chart=deploy/helm/bertstream
cache=.cache/deploy
bin="$cache/bin"
schemas="$cache/kubernetes-json-schema"

say() { printf '\033[1m[check-deploy]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[check-deploy] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  command -v apt-get >/dev/null || die "$* missing and no apt-get: install it by hand"
  say "installing Debian packages: $*"
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- tools -------------------------------------------------------------------
go_tool() { # NAME VERSION MODULE/PATH [LDFLAGS]
  local name=$1 version=$2 pkg=$3 ldflags=${4:-}
  local target="$bin/$name-$version"
  if [ ! -x "$target" ]; then
    local go
    go="$(command -v go || echo /usr/local/go/bin/go)"
    [ -x "$go" ] || die "Go is needed to build $name $version (go install $pkg@$version)"
    say "building $name $version with $("$go" env GOVERSION) (once; later runs reuse $target)"
    local tmp start=$SECONDS
    tmp="$(mktemp -d)"
    # HOME may be unset in CI: give Go its caches under .cache then.
    if [ -z "${HOME:-}" ]; then export GOPATH="$root/.cache/go" GOCACHE="$root/.cache/go-build" GOFLAGS="${GOFLAGS:-} -modcacherw"; fi
    GOBIN="$tmp" GOTOOLCHAIN=local CGO_ENABLED=0 "$go" install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version" \
      || die "go install $pkg@$version"
    mkdir -p "$bin"
    mv "$tmp/$name" "$target"
    rm -rf "$tmp"
    say "built $name in $((SECONDS - start)) s"
  fi
  echo "$target"
}

helm="$(go_tool helm "$HELM_VERSION" helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION")"
kubeconform="$(go_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform "-X main.version=$KUBECONFORM_VERSION")"

command -v docker-compose >/dev/null || apt_install docker-compose

# --- Kubernetes schemas ------------------------------------------------------
stamp="$schemas/.$(cat deploy/schemas/kubernetes-validate.txt deploy/schemas/k8s-schemas.py | sha256sum | cut -c1-12)-${KUBE_VERSIONS[*]// /-}"
if [ ! -f "$stamp" ]; then
  say "fetching the Kubernetes JSON schemas (PyPI: $(grep -o '^kubernetes-validate==[^ ]*' deploy/schemas/kubernetes-validate.txt))"
  pip=(python3 -m pip)
  if ! python3 -m pip --version >/dev/null 2>&1; then
    if [ -x .venv/bin/pip ]; then pip=(.venv/bin/pip); else apt_install python3-pip; fi
  fi
  rm -rf "$schemas" "$cache/wheel"
  "${pip[@]}" download -q --no-deps --only-binary :all: --require-hashes \
    -r deploy/schemas/kubernetes-validate.txt -d "$cache/wheel" || die "pip download kubernetes-validate"
  python3 deploy/schemas/k8s-schemas.py "$cache"/wheel/kubernetes_validate-*.whl "$schemas" "${KUBE_VERSIONS[@]}" >&2 \
    || die "unpacking the Kubernetes schemas"
  rm -rf "$cache/wheel"
  touch "$stamp"
fi

# kubeconform's -schema-location templates: the Kubernetes schemas, then KEDA's.
k8s_location="$schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
keda_location="deploy/schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"

# --- the chart -----------------------------------------------------------------
# The defaults alone leave Kafka's and Postgres's addresses empty, which `helm
# template` refuses (as `helm install` would): ci/defaults-values.yaml adds the two.
rendered_values=("$chart"/ci/*.yaml "$chart/values-local.yaml")

for values in "" "${rendered_values[@]}"; do
  args=()
  [ -n "$values" ] && args=(-f "$values")
  say "helm lint --strict: ${values:-the default values}"
  "$helm" lint --strict "$chart" "${args[@]}" >&2 || die "helm lint ${values:-the default values}"
done

for values in "${rendered_values[@]}"; do
  for kube in "${KUBE_VERSIONS[@]}"; do
    say "helm template | kubeconform -strict (Kubernetes $kube): $values"
    rendered="$("$helm" template bertstream "$chart" --kube-version "$kube" -f "$values")" \
      || die "helm template $values (Kubernetes $kube)"
    printf '%s\n' "$rendered" | "$kubeconform" -strict -summary -kubernetes-version "$kube" \
      -schema-location "$k8s_location" \
      -schema-location "$keda_location" \
      >&2 || die "kubeconform $values (Kubernetes $kube)"
  done
done

# The manifests of a local try (Kafka and Postgres beside the chart).
for manifest in deploy/local/*.yaml; do
  say "kubeconform -strict: $manifest"
  "$kubeconform" -strict -summary -kubernetes-version "${KUBE_VERSIONS[-1]}" \
    -schema-location "$k8s_location" \
    "$manifest" >&2 || die "kubeconform $manifest"
done

# The chart refuses settings that would break a drain or waste workers.
must_fail() { # WHAT ARGS...
  local what=$1; shift
  if "$helm" template bertstream "$chart" -f "$chart/ci/defaults-values.yaml" "$@" >/dev/null 2>&1; then
    die "helm template accepted $what"
  fi
}
must_fail "terminationGracePeriodSeconds below the drain bound" --set terminationGracePeriodSeconds=20
must_fail "autoscaling.maxReplicas above kafka.partitions" --set autoscaling.maxReplicas=9
must_fail "no Kafka address" --set kafka.brokers=
must_fail "no database URL" --set database.url=

# --- docker-compose.yml ---------------------------------------------------------
say "docker-compose config -q (and --profile demo)"
docker-compose -f docker-compose.yml config -q || die "docker-compose.yml"
docker-compose -f docker-compose.yml --profile demo config -q || die "docker-compose.yml --profile demo"

say "all deployment checks passed"
