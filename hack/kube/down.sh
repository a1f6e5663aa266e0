#!/usr/bin/env bash
# Stops the etcd and kube-apiserver that hack/kube/up.sh DIR started. Leaves DIR in place (logs
# stay readable); remove it yourself. Safe to run twice, or on a DIR where up.sh failed.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir="$1"

# A zombie (exited, not yet reaped by its parent) counts as gone.
alive() { kill -0 "$1" 2>/dev/null && ! grep -q "^State:[[:space:]]*Z" "/proc/$1/status" 2>/dev/null; }

stop() { # stop NAME: SIGTERM, up to 10 s to exit, then SIGKILL
  local f="$dir/$1.pid" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  # Only signal the process if it is still the one we started (pids are reused).
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# The API server first, so it does not spend its last seconds retrying a vanished etcd.
stop kube-apiserver
stop etcd
