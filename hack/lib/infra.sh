# shellcheck shell=bash
# Helpers shared by hack/containerd.sh, hack/registry.sh and the image scripts. Source it; don't run it.

# The running script's absolute path, for commands that run it again later from elsewhere.
# shellcheck disable=SC2034 # used by the scripts that source this file
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

# Prints a TCP port on 127.0.0.1 that was free a moment ago (callers retry if it is taken meanwhile).
free_port() {
  node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# True while the process in PIDFILE is alive.
pid_alive() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Sends SIGTERM to the process in PIDFILE, SIGKILL after GRACE seconds, and waits until it is gone.
stop_pidfile() {
  local pidfile=$1 grace=${2:-10} pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait_gone "$pid"
  fi
  rm -f "$pidfile"
}

# Sends SIGKILL at once to the process in PIDFILE and waits until it is gone.
kill_pidfile() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid"
  fi
  rm -f "$pidfile"
}

# Waits until PID has exited (it is not our child, so `wait` cannot be used). A zombie counts as gone.
wait_gone() {
  local pid=$1 i state
  for ((i = 0; i < 300; i++)); do
    [ -e "/proc/$pid" ] || return 0
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
    [ "$state" = Z ] && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): process $pid did not exit" >&2
  return 1
}

# Dies unless OWNER (if given) is the id of a running process.
check_owner() {
  local owner=$1
  [ -n "$owner" ] || return 0
  [[ $owner =~ ^[0-9]+$ ]] || die "--owner-pid must be a process id, got: '$owner'"
  kill -0 "$owner" 2>/dev/null || die "--owner-pid $owner is not running"
}

# watch_owner OWNER PIDFILE [CLEANUP...]: starts a detached watchdog that stops the process in
# PIDFILE once process OWNER has exited and then runs CLEANUP, so a test runner killed mid-test
# leaves no daemon (and, with CLEANUP, no directory) behind. It ends by itself when the daemon ends first.
watch_owner() {
  local owner=$1 pidfile=$2 pid
  shift 2
  pid=$(cat "$pidfile")
  setsid bash "$(dirname "${BASH_SOURCE[0]}")/watch-owner.sh" "$owner" "$pid" "$@" </dev/null >/dev/null 2>&1 &
}
