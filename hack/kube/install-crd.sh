#!/usr/bin/env bash
# Applies Stoker's Warmup CRD to the cluster of KUBECONFIG and waits until it is Established.
#
#   hack/kube/install-crd.sh KUBECONFIG
#
# Uses STOKER_KUBE_BIN/kubectl when set, else the kubectl hack/kube/build.sh built.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -eq 1 ] || { echo "usage: $0 KUBECONFIG" >&2; exit 2; }
[ -f "$1" ] || { echo "install-crd.sh: kubeconfig $1 not found" >&2; exit 1; }
bin="${STOKER_KUBE_BIN:-$(bash "$here/build.sh")}"
kubectl=("$bin/kubectl" --kubeconfig "$1")

"${kubectl[@]}" apply -f "$here/../../deploy/crd/warmups.stoker.io.yaml" >&2
"${kubectl[@]}" wait --for condition=Established --timeout=60s crd/warmups.stoker.io >&2
