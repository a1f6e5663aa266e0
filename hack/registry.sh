#!/usr/bin/env bash
# A private OCI registry (Debian docker-registry, distribution 2.8) on 127.0.0.1, storage under DIR.
#
#   hack/registry.sh start DIR [--htpasswd USER PASS] [--owner-pid PID [--owner-cleanup]]
#                                                      prints 127.0.0.1:PORT (plain HTTP; basic auth
#                                                      with bcrypt htpasswd when --htpasswd is given;
#                                                      stopped when PID exits, with --owner-pid, and
#                                                      DIR removed too, with --owner-cleanup)
#   hack/registry.sh stop DIR                          stop it (DIR and the stored images stay)
#   hack/registry.sh clean DIR                         stop it and remove DIR
#   hack/registry.sh host DIR                          prints 127.0.0.1:PORT of a running registry
#
# Log: DIR/registry.log; pid: DIR/registry.pid; address: DIR/registry.host.
set -euo pipefail
# shellcheck source=hack/lib/infra.sh
source "$(dirname "$0")/lib/infra.sh"

usage() { die "usage: $0 start DIR [--htpasswd USER PASS] [--owner-pid PID [--owner-cleanup]] | stop|clean|host DIR"; }

cmd=${1:-}
[ $# -ge 2 ] || usage
dir=$2
[ -n "$dir" ] || usage
shift 2
case $cmd in start) mkdir -p "$dir" ;; esac
if [ -d "$dir" ]; then dir=$(cd "$dir" && pwd); fi
pidfile=$dir/registry.pid

start() {
  local user="" pass="" owner="" owner_cleanup=""
  while [ $# -gt 0 ]; do
    case $1 in
      --htpasswd)
        [ $# -ge 3 ] || die "--htpasswd needs USER and PASS"
        user=$2 pass=$3
        shift 3
        ;;
      --owner-pid) owner=${2:-}; shift 2 || die "--owner-pid needs a value" ;;
      --owner-cleanup) owner_cleanup=1; shift ;;
      *) die "unknown option: $1" ;;
    esac
  done
  check_owner "$owner"
  [[ -z $user || $user =~ ^[A-Za-z0-9._-]+$ ]] || die "user name must be letters, digits, '.', '_' or '-', got: '$user'"
  if pid_alive "$pidfile"; then
    die "a registry already runs for $dir (pid $(cat "$pidfile"))"
  fi
  mkdir -p "$dir/data"
  local auth=""
  if [ -n "$user" ]; then
    htpasswd -Bbn "$user" "$pass" >"$dir/htpasswd" 2>/dev/null || die "htpasswd failed for user '$user'"
    auth="auth:
  htpasswd:
    realm: stoker-test
    path: $dir/htpasswd"
  else
    rm -f "$dir/htpasswd"
  fi

  local attempt port i secret
  secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for ((attempt = 0; attempt < 5; attempt++)); do
    port=$(free_port)
    cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
$auth
YAML
    setsid docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for ((i = 0; i < 200; i++)); do
      pid_alive "$pidfile" || break
      # /v2/ answers 200 when open and 401 when auth is on; either proves it serves.
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" 2>/dev/null || true)
      if [ "$code" = 200 ] || [ "$code" = 401 ]; then
        echo "127.0.0.1:$port" >"$dir/registry.host"
        [ -z "$owner" ] || watch_owner "$owner" "$pidfile" ${owner_cleanup:+bash "$SELF" clean "$dir"}
        echo "127.0.0.1:$port"
        return 0
      fi
      sleep 0.05
    done
    stop_pidfile "$pidfile" 5
    # Most likely the port was taken between picking and binding it: try another.
    grep -q 'address already in use' "$dir/registry.log" 2>/dev/null || break
  done
  tail -n 20 "$dir/registry.log" >&2
  die "registry did not start (log: $dir/registry.log)"
}

case $cmd in
  start) start "$@" ;;
  stop) stop_pidfile "$pidfile" 10 ;;
  clean)
    stop_pidfile "$pidfile" 10
    rm -rf "$dir"
    ;;
  host)
    [ -f "$dir/registry.host" ] || die "no registry started in $dir"
    cat "$dir/registry.host"
    ;;
  *) usage ;;
esac
