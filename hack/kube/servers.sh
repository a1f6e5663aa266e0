# shellcheck shell=bash
# How hack/kube/up.sh and hack/kube/server.sh launch etcd and kube-apiserver for DIR. Source it; don't
# run it. Everything a restart needs (binaries, ports) is in DIR/servers.env, which up.sh writes once,
# so a restarted server comes back on the same port and the same etcd data.
#
#   load_servers_env DIR; start_etcd; start_apiserver; stop_server etcd|kube-apiserver

alive() { kill -0 "$1" 2>/dev/null && ! grep -q "^State:[[:space:]]*Z" "/proc/$1/status" 2>/dev/null; }

wait_for() { # wait_for SECONDS PID COMMAND...: until COMMAND succeeds, PID exits, or time runs out
  local limit=$1 pid=$2; shift 2
  local end=$((SECONDS + limit))
  while ((SECONDS < end)); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$pid" || return 1
    sleep 0.2
  done
  return 1
}

# write_servers_env DIR KUBE_BIN ETCD_BIN ETCD_CLIENT_PORT ETCD_PEER_PORT API_PORT
write_servers_env() {
  printf 'kube_bin=%q\netcd_bin=%q\netcd_client=%q\netcd_peer=%q\napi_port=%q\n' "$2" "$3" "$4" "$5" "$6" >"$1/servers.env"
}

load_servers_env() {
  dir=$1
  [ -f "$dir/servers.env" ] || { echo "$(basename "$0"): $dir/servers.env not found (was the cluster started with hack/kube/up.sh?)" >&2; return 1; }
  # shellcheck disable=SC1091
  . "$dir/servers.env"
  pki="$dir/pki"
}

# write_kubeconfig FILE NAME CERT KEY: a kubeconfig for this API server (api_port, pki) whose user
# is the client certificate CERT with KEY, embedded, so the file stands on its own.
write_kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: stoker-test
    cluster:
      server: https://127.0.0.1:$api_port
      certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
  - name: $2
    user:
      client-certificate-data: $(base64 -w0 "$3")
      client-key-data: $(base64 -w0 "$4")
contexts:
  - name: $2
    context:
      cluster: stoker-test
      user: $2
      namespace: default
current-context: $2
EOF
}

# Starts etcd on DIR's data and ports (setsid: a test runner's process group signals do not reach it).
start_etcd() {
  setsid "$etcd_bin" --name stoker-test --data-dir "$dir/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "stoker-test=http://127.0.0.1:$etcd_peer" \
    --log-level warn >>"$dir/etcd.log" 2>&1 </dev/null &
  echo $! >"$dir/etcd.pid"
  wait_for 30 "$(cat "$dir/etcd.pid")" bash -c "exec 3<>/dev/tcp/127.0.0.1/$etcd_client"
}

start_apiserver() {
  setsid "$kube_bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_client" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$pki" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
    --endpoint-reconciler-type none \
    --profiling=false \
    --v=1 >>"$dir/kube-apiserver.log" 2>&1 </dev/null &
  echo $! >"$dir/kube-apiserver.pid"
}

# True once the API server answers /readyz with ok.
apiserver_ready() {
  [ "$("$kube_bin/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz 2>/dev/null)" = ok ]
}

# stop_server NAME: SIGTERM, up to 10 s to exit, then SIGKILL; removes DIR/NAME.pid. Only signals the
# process if it is still the one we started (pids are reused).
stop_server() {
  local f="$dir/$1.pid" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
