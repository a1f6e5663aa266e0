#!/usr/bin/env bash
# watch-owner.sh OWNER PID [CLEANUP...]: once process OWNER has exited, stops PID (SIGTERM, SIGKILL
# after 10 s) and then runs CLEANUP (a command, e.g. removing the daemon's directory). Ends by itself,
# without cleaning up, when PID ends first. Started detached by watch_owner in infra.sh.
owner=$1 pid=$2
shift 2
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
while kill -0 "$owner" 2>/dev/null; do
  alive "$pid" || exit 0
  sleep 1
done
kill -TERM "$pid" 2>/dev/null || exit 0
for _ in $(seq 100); do
  alive "$pid" || break
  sleep 0.1
done
alive "$pid" && kill -KILL "$pid" 2>/dev/null
if [ $# -gt 0 ]; then
  "$@"
fi
exit 0
