#!/usr/bin/env bash
# Builds kube-apiserver and kubectl from the published Kubernetes Go modules (pinned in go.mod
# beside this script) and prints the directory that holds them. No prebuilt binaries are fetched.
#
# Binaries are cached outside the repository, keyed by the Kubernetes version:
#   ${STOKER_CACHE:-$HOME/.cache/stoker}/kube/<version>/bin/
# A second run finds them there and builds nothing. The first build takes a while on 2 cores
# (see the README); Go's own module and build caches (GOMODCACHE, GOCACHE) are used as configured.
#
# etcd: Debian's etcd-server is used when it is installed (hack/install-deps.sh installs it);
# otherwise set STOKER_ETCD to an etcd binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "build.sh: the go command is not installed" >&2; exit 1; }

version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$here/go.mod")"
[ -n "$version" ] || { echo "build.sh: no 'require k8s.io/kubernetes vX' line in $here/go.mod" >&2; exit 1; }

bin="${STOKER_CACHE:-$HOME/.cache/stoker}/kube/$version/bin"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ]; then
  echo "$bin"
  exit 0
fi

echo "building kube-apiserver and kubectl $version into $bin (first time only; slow)" >&2
start=$SECONDS
mkdir -p "$bin"
tmp="$(mktemp -d "$bin/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# One go build for both commands so their shared packages compile once.
# Stamp the version the way the Kubernetes release build does (kubectl version, /version).
minor="$(echo "$version" | cut -d. -f2)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
(cd "$here" && GOFLAGS=-buildvcs=false go build -trimpath -ldflags="$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)
# Move into place only when both built, so an interrupted build is never mistaken for a cached one.
mv -f "$tmp/kubectl" "$bin/kubectl"
mv -f "$tmp/kube-apiserver" "$bin/kube-apiserver"
echo "built in $((SECONDS - start))s" >&2
echo "$bin"
