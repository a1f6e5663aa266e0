#!/usr/bin/env bash
# A real Kubernetes cluster on this machine: the control plane of hack/kube/up.sh (etcd and
# kube-apiserver on loopback) plus kube-scheduler, kube-controller-manager, and N real kubelet nodes,
# each with its own containerd (Debian's, with runc), its own pod network and its own cgroup root.
#
#   hack/kube/cluster.sh up DIR [--nodes N] [--owner-pid PID]   prints the admin kubeconfig's path
#   hack/kube/cluster.sh down DIR                               stops everything, leaves DIR's logs
#   hack/kube/cluster.sh env DIR                                prints DIR/cluster.env
#
# What makes it real: ReplicaSets, DaemonSets, EndpointSlices and garbage collection come from the
# controller-manager; the scheduler places pods; each kubelet authenticates with a node client
# certificate (system:node:NAME in group system:nodes) and the API server authorizes it with the Node
# authorizer and NodeRestriction, as kubeadm sets them up.
#
# Networks: a kubelet refuses a loopback node IP, so node I gets a Linux bridge made here (stkbrX,
# address 10.214.X.1/24, X picked free; hack/agent-net.sh keeps to 10.213.0.0/16) as its node IP,
# and its pods get addresses from that /24 through the CNI bridge plugin (Debian's containernetworking-plugins), no masquerade,
# no iptables. Pods are reachable from this machine at those addresses and nowhere else.
#
# Each node's directory DIR/node-I is a shared mount (as / is on a systemd host), so hostPath volumes
# with mount propagation work; put host files for its pods under DIR/node-I/data (`node_I_data`).
#
# A private plain-HTTP registry on loopback (DIR/registry) holds the sandbox (pause) image, made here
# from Debian's static busybox, since no public registry is reachable; push your own images there too
# (its address is `registry` in DIR/cluster.env; every node's containerd pulls from it over HTTP).
#
# Pods reach the API server only with hostNetwork and KUBERNETES_SERVICE_HOST=127.0.0.1 (no
# kube-proxy runs, so the `kubernetes` Service's ClusterIP leads nowhere); DIR/cluster.env has
# `api_port` for that.
#
# Not available here: image garbage collection and disk-pressure eviction (cAdvisor cannot read the
# root filesystem's device on these machines), so their thresholds are set out of the way.
#
# With --owner-pid, `down` runs by itself once process PID exits, so a killed test run leaves
# nothing behind: no process, mount, bridge, pod network namespace or cgroup.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
hack="$(cd "$here/.." && pwd)"
# shellcheck source=hack/lib/infra.sh
source "$hack/lib/infra.sh"
# shellcheck source=hack/kube/servers.sh
. "$here/servers.sh"

usage() { die "usage: $0 up DIR [--nodes N] [--owner-pid PID] | down DIR | env DIR"; }
[ $# -ge 2 ] || usage
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
shift 2

CGROUP_FS=/sys/fs/cgroup
HOST_DIRS=(/var/lib/kubelet /var/lib/cni /run/containerd)

kubectl_admin() { "$kube_bin/kubectl" --kubeconfig "$dir/kube/kubeconfig" "$@"; }

# issue NAME SUBJECT [SAN]: a client (or, with SAN, a serving) certificate signed by the cluster CA.
issue() {
  local name=$1 subject=$2 san=${3:-} pki=$dir/kube/pki
  local ext=(-addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=clientAuth")
  [ -z "$san" ] || ext=(-addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth"
    -addext "subjectAltName=$san")
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -subj "$subject" "${ext[@]}" \
    -keyout "$pki/$name.key" -out "$pki/$name.crt" 2>/dev/null
  chmod 600 "$pki/$name.key"
}

# kubeconfig NAME: DIR/NAME.kubeconfig for the client certificate NAME.
kubeconfig() {
  pki=$dir/kube/pki write_kubeconfig "$dir/$1.kubeconfig" "$1" "$dir/kube/pki/$1.crt" "$dir/kube/pki/$1.key"
  echo "$dir/$1.kubeconfig"
}

# start_daemon NAME COMMAND...: runs COMMAND detached, logging to DIR/NAME.log, pid in DIR/NAME.pid.
start_daemon() {
  local name=$1
  shift
  setsid "$@" >>"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

# claim_subnet: prints a free X for 10.214.X.0/24, having created the bridge stkbrX that claims it.
claim_subnet() {
  local x tries
  for ((tries = 0; tries < 50; tries++)); do
    x=$((100 + RANDOM % 150))
    ip -o addr show | grep -q " 10\.214\.$x\." && continue
    if ip link add "stkbr$x" type bridge 2>/dev/null; then
      echo "$x"
      return 0
    fi
  done
  die "no free 10.214.X.0/24 subnet for a node network"
}

start_node() {
  local i=$1 name=node-$i x ip node_dir=$dir/node-$i
  mkdir -p "$node_dir"
  # A node's filesystem is a shared mount, as / is on a systemd host: hostPath volumes with
  # mountPropagation (the agent's allowed roots, its image filesystem) need one.
  mount --bind "$node_dir" "$node_dir"
  mount --make-rshared "$node_dir"
  mkdir -p "$node_dir/cni" "$node_dir/kubelet" "$node_dir/pod-logs" "$node_dir/data"
  x=$(claim_subnet)
  ip="10.214.$x.1"
  echo "node_${i}_subnet=$x" >>"$dir/cluster.env"
  ip addr add "$ip/24" dev "stkbr$x"
  ip link set "stkbr$x" up

  cat >"$node_dir/cni/10-stoker.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "stoker-$x",
  "plugins": [
    {
      "type": "bridge", "bridge": "stkbr$x", "isGateway": true, "ipMasq": false, "hairpinMode": false,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.214.$x.0/24", "rangeStart": "10.214.$x.10", "gateway": "$ip" }]],
                "dataDir": "$node_dir/cni/ipam", "routes": [{ "dst": "0.0.0.0/0" }] }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": false }
  ]
}
EOF
  bash "$hack/containerd.sh" start "$node_dir/containerd" --snapshotter overlayfs \
    --cni "$node_dir/cni" --sandbox-image "$registry/stoker/pause:1" >/dev/null
  bash "$hack/containerd.sh" add-registry "$node_dir/containerd" "$registry"

  # Its own cgroup root in every hierarchy (cgroup v1, cgroupfs driver), removed again by down.
  local h
  for h in "$CGROUP_FS"/*/; do
    mkdir -p "$h/stoker-$x"
    if [ -f "$h/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" >"$h/stoker-$x/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h/stoker-$x/cpuset.mems"
    fi
  done

  local kport hport
  kport=$(free_port)
  hport=$(free_port)
  issue "system:node:$name" "/O=system:nodes/CN=system:node:$name"
  issue "kubelet-$name-serving" "/CN=$name" "IP:$ip,DNS:$name"
  kubeconfig "system:node:$name" >/dev/null
  local pki=$dir/kube/pki
  cat >"$node_dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$node_dir/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /stoker-$x
failCgroupV1: false
failSwapOn: false
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
kernelMemcgNotification: false
serializeImagePulls: false
hairpinMode: none
address: $ip
port: $kport
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hport
tlsCertFile: $pki/kubelet-$name-serving.crt
tlsPrivateKeyFile: $pki/kubelet-$name-serving.key
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: false }
  x509: { clientCAFile: $pki/ca.crt }
authorization: { mode: AlwaysAllow }
podLogsDir: $node_dir/pod-logs
# Image GC and disk-pressure eviction cannot work here (cAdvisor cannot read the root device):
# keep them out of the way rather than let them act on wrong figures.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { memory.available: "100Mi" }
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
EOF
  start_daemon "kubelet-$name" "$kube_bin/kubelet" --config "$node_dir/kubelet.yaml" \
    --kubeconfig "$dir/system:node:$name.kubeconfig" --hostname-override "$name" --node-ip "$ip" \
    --root-dir "$node_dir/kubelet" --cert-dir "$node_dir/kubelet/pki" --v=1
  {
    echo "node_${i}_name=$name"
    echo "node_${i}_ip=$ip"
    echo "node_${i}_containerd=$node_dir/containerd"
    echo "node_${i}_kubelet_root=$node_dir/kubelet"
    echo "node_${i}_data=$node_dir/data"
  } >>"$dir/cluster.env"
}

up() {
  local nodes=1 owner=""
  while [ $# -gt 0 ]; do
    case $1 in
      --nodes) nodes=${2:-}; shift 2 || die "--nodes needs a value" ;;
      --owner-pid) owner=${2:-}; shift 2 || die "--owner-pid needs a value" ;;
      *) die "unknown option: $1" ;;
    esac
  done
  [[ $nodes =~ ^[1-4]$ ]] || die "--nodes must be 1..4, got: '$nodes'"
  check_owner "$owner"
  [ ! -e "$dir/cluster.env" ] || die "$dir already has a cluster; run: $0 down $dir"
  [ "$(id -u)" = 0 ] || die "a kubelet needs root (cgroups, mounts, network namespaces)"
  [ -x /bin/busybox ] || die "the pause image needs Debian's busybox-static"

  kube_bin=${STOKER_KUBE_BIN:-$(bash "$here/build.sh")}
  for b in kubelet kube-scheduler kube-controller-manager; do
    [ -x "$kube_bin/$b" ] || die "$kube_bin/$b not found (run hack/kube/build.sh)"
  done
  echo "kube_bin=$kube_bin" >"$dir/cluster.env"
  echo "nodes=$nodes" >>"$dir/cluster.env"
  # Host directories the kubelet, CNI and the shims use whatever their settings; down removes the
  # ones this cluster created, once empty.
  local p made=()
  for p in "${HOST_DIRS[@]}"; do [ -e "$p" ] || made+=("$p"); done
  echo "made_host_dirs='${made[*]}'" >>"$dir/cluster.env"
  trap 'echo "cluster.sh: start failed; logs in $dir" >&2; down >/dev/null 2>&1 || true' ERR

  if [ -n "$owner" ]; then
    setsid bash -c '
      owner=$1 dir=$2 self=$3
      while kill -0 "$owner" 2>/dev/null; do [ -e "$dir/cluster.env" ] || exit 0; sleep 1; done
      [ -e "$dir/cluster.env" ] && exec bash "$self" down "$dir"
    ' cluster-owner-watch "$owner" "$dir" "$SELF" </dev/null >/dev/null 2>&1 &
  fi

  STOKER_KUBE_BIN=$kube_bin bash "$here/up.sh" "$dir/kube" >/dev/null
  # shellcheck disable=SC1091
  api_port=$(. "$dir/kube/servers.env" && echo "$api_port")
  echo "api_port=$api_port" >>"$dir/cluster.env"

  registry=$(bash "$hack/registry.sh" start "$dir/registry")
  echo "registry=$registry" >>"$dir/cluster.env"
  bash "$hack/make-image.sh" "$dir/pause" --layers 0 --busybox >/dev/null
  bash "$hack/push-image.sh" "$dir/pause" "$registry/stoker/pause:1" >/dev/null

  issue system:kube-scheduler /CN=system:kube-scheduler
  issue system:kube-controller-manager /CN=system:kube-controller-manager
  local sk ck
  sk=$(kubeconfig system:kube-scheduler)
  ck=$(kubeconfig system:kube-controller-manager)
  start_daemon kube-scheduler "$kube_bin/kube-scheduler" --kubeconfig "$sk" \
    --authentication-kubeconfig "$sk" --authorization-kubeconfig "$sk" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port "$(free_port)" --v=1
  start_daemon kube-controller-manager "$kube_bin/kube-controller-manager" --kubeconfig "$ck" \
    --authentication-kubeconfig "$ck" --authorization-kubeconfig "$ck" \
    --service-account-private-key-file "$dir/kube/pki/sa.key" --root-ca-file "$dir/kube/pki/ca.crt" \
    --use-service-account-credentials --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$(free_port)" --v=1

  local i
  for ((i = 1; i <= nodes; i++)); do start_node "$i"; done

  local end=$((SECONDS + 180))
  until [ "$(kubectl_admin get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True)" = "$nodes" ]; do
    for d in kube-scheduler kube-controller-manager $(for ((i = 1; i <= nodes; i++)); do echo "kubelet-node-$i"; done); do
      pid_alive "$dir/$d.pid" || { tail -n 30 "$dir/$d.log" >&2; die "$d exited during start-up (log: $dir/$d.log)"; }
    done
    ((SECONDS < end)) || die "nodes not Ready within 180 s (logs: $dir/kubelet-node-*.log)"
    sleep 0.5
  done
  # The default ServiceAccount must exist before pods can be created in a namespace.
  until kubectl_admin get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
  trap - ERR
  echo "$dir/kube/kubeconfig"
}

down() {
  [ -f "$dir/cluster.env" ] || return 0
  # Best effort from here on: one step failing must not leave the rest running.
  set +e
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  local i x sock
  # The managers first, so nothing recreates pods; then each node's pods through its runtime.
  stop_pidfile "$dir/kube-controller-manager.pid" 10
  stop_pidfile "$dir/kube-scheduler.pid" 10
  for ((i = 1; i <= ${nodes:-0}; i++)); do
    stop_pidfile "$dir/kubelet-node-$i.pid" 10
    x=$(eval echo "\${node_${i}_subnet:-}")
    [ -n "$x" ] || continue
    sock=$dir/node-$i/containerd/containerd.sock
    # Every process of every pod lives under the node's cgroup root: kill them all.
    kill_cgroup "stoker-$x"
    remove_pod_netns "stkbr$x"
    # A killed shim leaves its socket in containerd's fixed directory, named by the hash of the
    # containerd address, the namespace and the task id: note them while the tasks are listed.
    local task shim_sockets=()
    for task in "$dir/node-$i/containerd/state/io.containerd.runtime.v2.task"/*/*; do
      [ -d "$task" ] || continue
      shim_sockets+=("/run/containerd/s/$(printf '%s' "$sock/$(basename "$(dirname "$task")")/$(basename "$task")" | sha256sum | cut -c1-64)")
    done
    bash "$hack/containerd.sh" clean "$dir/node-$i/containerd" >/dev/null 2>&1 || true
    pkill -KILL -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
    rm -f "${shim_sockets[@]}"
    ip link del "stkbr$x" 2>/dev/null || true
    # CNI's cache of this network's results (and of the loopback of the same sandboxes).
    local f id
    for f in /var/lib/cni/results/"stoker-$x"-*; do
      [ -e "$f" ] || continue
      id=${f#/var/lib/cni/results/stoker-"$x"-}
      rm -f "$f" "/var/lib/cni/results/cni-loopback-${id%-eth0}-lo"
    done
    remove_cgroup "stoker-$x"
    # The kubelet's own mounts (projected volumes, tmpfs secrets) under its root dir.
    # (The kubelet bind-mounts its root dir onto itself, maybe more than once: until none is left.)
    local pass
    for pass in 1 2 3 4 5; do
      awk -v d="$dir/node-$i" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    done
  done
  # The kubelet links each container's log into /var/log/containers; drop the ones into DIR.
  find /var/log/containers -maxdepth 1 -type l -lname "$dir/*" -delete 2>/dev/null || true
  local p
  for p in ${made_host_dirs:-}; do
    rm -f "$p/device-plugins/kubelet.sock"
    [ -d "$p" ] && find "$p" -depth -type d -empty -delete 2>/dev/null || true
  done
  bash "$hack/registry.sh" stop "$dir/registry" >/dev/null 2>&1 || true
  bash "$here/down.sh" "$dir/kube" >/dev/null 2>&1 || true
  rm -f "$dir/cluster.env"
}

kill_cgroup() {
  local root=$1 pass
  for pass in 1 2 3; do
    local pids
    pids=$(find "$CGROUP_FS/pids/$root" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.3
  done
}

remove_cgroup() {
  local root=$1 h
  for h in "$CGROUP_FS"/*/; do
    [ -d "$h/$root" ] && find "$h/$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

# The network namespaces of pods whose veth hangs on BRIDGE (the runtime did not tear them down).
remove_pod_netns() {
  local bridge=$1 ns peer
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    peer=$(ip -n "$ns" -o link show eth0 2>/dev/null | sed -n 's/.*eth0@if\([0-9]*\).*/\1/p' || true)
    [ -n "$peer" ] || continue
    if ip -o link show 2>/dev/null | grep -q "^$peer: .* master $bridge "; then
      ip netns delete "$ns" 2>/dev/null || true
    fi
  done
}

case $cmd in
  up) up "$@" ;;
  down) down ;;
  env) cat "$dir/cluster.env" ;;
  *) usage ;;
esac
