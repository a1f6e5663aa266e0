#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, helm, and the node side of a cluster (kubelet, kube-scheduler,
# kube-controller-manager) from their published Go modules (pinned in go.mod beside this script) and
# prints the directory that holds them. No prebuilt binaries are fetched.
#
# Binaries are cached outside the repository, keyed by the Kubernetes and Helm versions:
#   ${STOKER_CACHE:-$HOME/.cache/stoker}/kube/<kubernetes version>-helm-<helm version>/bin/
# A second run finds them there and builds nothing. The first build is slow (about 10-25 minutes
# on 2 cores for kube-apiserver, about 8 more for the kubelet and the two managers); Go's module and build caches (GOMODCACHE, GOCACHE) are
# used as configured, so a rebuild after a version bump compiles only what changed.
#
# etcd is not built here: hack/kube/up.sh uses Debian's etcd-server (hack/install-deps.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "build.sh: the go command is not installed" >&2; exit 1; }

required() { # required MODULE: the version go.mod requires
  awk -v m="$1" '($1 == m) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' "$here/go.mod"
}
kube_version="$(required k8s.io/kubernetes)"
helm_version="$(required helm.sh/helm/v3)"
[ -n "$kube_version" ] && [ -n "$helm_version" ] ||
  { echo "build.sh: $here/go.mod must require k8s.io/kubernetes and helm.sh/helm/v3" >&2; exit 1; }

bin="${STOKER_CACHE:-$HOME/.cache/stoker}/kube/$kube_version-helm-$helm_version/bin"
commands=(kube-apiserver kubectl helm kubelet kube-scheduler kube-controller-manager)
# Sets missing to the commands not yet in the cache; prints the cache and exits when none is.
find_missing() {
  missing=()
  for c in "${commands[@]}"; do [ -x "$bin/$c" ] || missing+=("$c"); done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "$bin"
    exit 0
  fi
}
find_missing

# One build at a time: a second caller waits for the first and then finds the binaries cached.
mkdir -p "$bin"
exec 9>"$bin/.build.lock"
flock 9
find_missing

echo "building ${missing[*]} ($kube_version, helm $helm_version) into $bin (first time only; slow)" >&2
start=$SECONDS
tmp="$(mktemp -d "$bin/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Stamp the versions the way the release builds do (kubectl version, /version, helm version).
minor="$(echo "$kube_version" | cut -d. -f2)"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
# helm template and helm lint assume this Kubernetes version when no cluster is asked.
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
done
packages=()
for c in "${missing[@]}"; do
  case $c in
    helm) packages+=(helm.sh/helm/v3/cmd/helm) ;;
    *) packages+=("k8s.io/kubernetes/cmd/$c") ;;
  esac
done
# One go build for all of them so their shared packages (client-go, apimachinery, ...) compile once.
(cd "$here" && GOFLAGS=-buildvcs=false go build -trimpath -ldflags="$ldflags" -o "$tmp/" "${packages[@]}")
# Move into place only when all built, so an interrupted build is never mistaken for a cached one.
for c in "${missing[@]}"; do mv -f "$tmp/$c" "$bin/$c"; done
echo "built in $((SECONDS - start))s" >&2
echo "$bin"
