#!/usr/bin/env bash
# Stops the etcd and kube-apiserver that hack/kube/up.sh DIR started. Leaves DIR in place (logs
# stay readable); remove it yourself. Safe to run twice, or on a DIR where up.sh failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/kube/servers.sh
. "$here/servers.sh"
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir="$1"

# The API server first, so it does not spend its last seconds retrying a vanished etcd.
stop_server kube-apiserver
stop_server etcd
