#!/usr/bin/env bash
# Stops or starts one server of the cluster hack/kube/up.sh DIR started, to test what happens while
# the control plane is away. A server started again listens on the same port and uses the same etcd
# data, as after a restart or an upgrade.
#
#   hack/kube/server.sh DIR stop|start kube-apiserver|etcd
#
# stop: SIGTERM (SIGKILL after 10 s); returns once the process is gone. start: returns once the
# server answers (kube-apiserver: /readyz ok, which needs etcd; etcd: its client port accepts).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/kube/servers.sh
. "$here/servers.sh"

usage() { echo "usage: $0 DIR stop|start kube-apiserver|etcd" >&2; exit 2; }
[ $# -eq 3 ] || usage
action=$2 server=$3
case $server in kube-apiserver | etcd) ;; *) usage ;; esac
load_servers_env "$1"

case $action in
  stop) stop_server "$server" ;;
  start)
    if [ -e "$dir/$server.pid" ] && alive "$(cat "$dir/$server.pid")"; then
      echo "server.sh: $server is already running (pid $(cat "$dir/$server.pid"))" >&2
      exit 1
    fi
    if [ "$server" = etcd ]; then
      start_etcd || { echo "server.sh: etcd did not start; log: $dir/etcd.log" >&2; exit 1; }
    else
      start_apiserver
      wait_for 120 "$(cat "$dir/kube-apiserver.pid")" apiserver_ready ||
        { echo "server.sh: kube-apiserver did not become ready; log: $dir/kube-apiserver.log" >&2; exit 1; }
    fi
    ;;
  *) usage ;;
esac
