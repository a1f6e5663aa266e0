#!/usr/bin/env bash
# Starts a private etcd and kube-apiserver on loopback for tests and the demo.
#
#   hack/kube/up.sh DIR [--owner-pid PID]
#
# DIR: an empty or new directory (e.g. from mktemp -d). With --owner-pid, both servers are stopped
# when process PID exits, so a test runner killed mid-test leaves nothing running.
#
# Everything lives in DIR: certificates, etcd data, logs, pid files and DIR/kubeconfig, whose
# user is an admin client certificate in group system:masters. Ports are free ports picked at
# run time. Authorization is Node and RBAC (with NodeRestriction), so RBAC rules given to other
# identities are really enforced and kubelets (hack/kube/cluster.sh) get what kubeadm gives them.
# Prints the kubeconfig path once /readyz answers ok. Stop with hack/kube/down.sh DIR; stop and start
# one server again (same port, same etcd data) with hack/kube/server.sh.
#
# Environment: STOKER_KUBE_BIN (a directory with kube-apiserver and kubectl; default: what
# hack/kube/build.sh prints), STOKER_ETCD (an etcd binary; default: etcd on PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/kube/servers.sh
. "$here/servers.sh"

usage() { echo "usage: $0 DIR [--owner-pid PID]" >&2; exit 2; }
[ $# -ge 1 ] || usage
mkdir -p "$1"
dir="$(cd "$1" && pwd)"
shift
owner=""
while [ $# -gt 0 ]; do
  case $1 in
    --owner-pid) [ $# -ge 2 ] || usage; owner=$2; shift 2 ;;
    *) echo "up.sh: unknown option: $1" >&2; usage ;;
  esac
done
if [ -n "$owner" ]; then
  [[ $owner =~ ^[0-9]+$ ]] || { echo "up.sh: --owner-pid must be a process id, got: '$owner'" >&2; exit 2; }
  kill -0 "$owner" 2>/dev/null || { echo "up.sh: --owner-pid $owner is not running" >&2; exit 2; }
fi
if [ -e "$dir/kube-apiserver.pid" ] || [ -e "$dir/etcd.pid" ]; then
  echo "up.sh: $dir already has a running cluster (pid files present); run down.sh $dir first" >&2
  exit 1
fi

bin="${STOKER_KUBE_BIN:-$(bash "$here/build.sh")}"
etcd_bin="${STOKER_ETCD:-$(command -v etcd || true)}"
for f in "$bin/kube-apiserver" "$bin/kubectl"; do
  [ -x "$f" ] || { echo "up.sh: $f not found (run hack/kube/build.sh)" >&2; exit 1; }
done
[ -n "$etcd_bin" ] && [ -x "$etcd_bin" ] ||
  { echo "up.sh: no etcd binary (install Debian's etcd-server or set STOKER_ETCD)" >&2; exit 1; }

# If anything below fails, leave nothing running.
cleanup_on_error() { bash "$here/down.sh" "$dir" >/dev/null 2>&1 || true; }
trap cleanup_on_error ERR

# --- certificates -------------------------------------------------------------------------------
pki="$dir/pki"
mkdir -p "$pki"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -days 3650 -subj "/CN=stoker-test-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -x509 "${ec[@]}" -days 3650 -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
  -subj "/CN=kube-apiserver" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
  -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
  -keyout "$pki/apiserver.key" -out "$pki/apiserver.crt" 2>/dev/null
openssl req -x509 "${ec[@]}" -days 3650 -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
  -subj "/O=system:masters/CN=stoker-admin" \
  -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=clientAuth" \
  -keyout "$pki/admin.key" -out "$pki/admin.crt" 2>/dev/null
# Signs and verifies service-account tokens (TokenRequest works; no controller-manager runs).
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkey -out "$pki/sa.key"
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
chmod 600 "$pki"/*.key

# --- ports --------------------------------------------------------------------------------------
# Three distinct free loopback ports, held open together so the OS hands out different ones.
free_ports() {
  node -e '
    const net = require("node:net");
    const servers = [0, 1, 2].map(() => net.createServer());
    Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
      console.log(servers.map((s) => s.address().port).join(" "));
      for (const s of servers) s.close();
    });'
}

if [ -n "$owner" ]; then
  # A detached watchdog: once the owner exits, stop both servers as down.sh does. It ends by
  # itself when this script has finished and nothing runs any more (down.sh removed the pid files).
  setsid bash -c '
    owner=$1 up=$2 dir=$3 down=$4
    while kill -0 "$owner" 2>/dev/null; do
      if ! kill -0 "$up" 2>/dev/null && [ ! -e "$dir/kube-apiserver.pid" ] && [ ! -e "$dir/etcd.pid" ]; then exit 0; fi
      sleep 1
    done
    exec bash "$down" "$dir"
  ' kube-owner-watch "$owner" "$$" "$dir" "$here/down.sh" </dev/null >/dev/null 2>&1 &
fi

# A port picked free can be taken by someone else before our server binds it: retry with new ones.
started=""
for attempt in 1 2 3; do
  read -r etcd_client etcd_peer api_port < <(free_ports)

  rm -rf "$dir/etcd-data" "$dir/etcd.log" "$dir/kube-apiserver.log"
  write_servers_env "$dir" "$bin" "$etcd_bin" "$etcd_client" "$etcd_peer" "$api_port"
  load_servers_env "$dir"
  if ! start_etcd; then
    stop_server etcd
    echo "up.sh: etcd did not start (attempt $attempt); log: $dir/etcd.log" >&2
    continue
  fi
  start_apiserver

  write_kubeconfig "$dir/kubeconfig" stoker-admin "$pki/admin.crt" "$pki/admin.key"
  chmod 600 "$dir/kubeconfig"

  if wait_for 120 "$(cat "$dir/kube-apiserver.pid")" apiserver_ready; then
    started=1
    break
  fi
  echo "up.sh: kube-apiserver did not become ready (attempt $attempt); last log lines:" >&2
  grep -E "^[EF][0-9]{4}" "$dir/kube-apiserver.log" | tail -n 5 >&2 || tail -n 5 "$dir/kube-apiserver.log" >&2
  stop_server kube-apiserver
  stop_server etcd
done
[ -n "$started" ] || { echo "up.sh: giving up; logs in $dir" >&2; exit 1; }

echo "$dir/kubeconfig"
