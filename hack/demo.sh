#!/usr/bin/env bash
# `npm run demo`: the whole path on one machine. A real kube-apiserver (built from source the first
# time, then cached), three simulated nodes node-1..node-3 (each a Node object with its own
# containerd and its own `stoker agent`, found by the controller through the EndpointSlice
# Kubernetes would keep for its pod, written here since no kube-controller-manager runs), the controller
# (`stoker controller`), and two registries on loopback: one open, one behind basic auth.
# It applies a Warmup of two images (the private one through an imagePullSecret), shows live
# progress and `kubectl get warmups`, then asks each node's runtime whether the images are there.
# Everything runs under one temp dir and is torn down on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

demo_start=$(date +%s)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
elapsed() { echo "$(($(date +%s) - $1)) s"; }

say "installing dependencies and building Stoker"
bash hack/install-deps.sh
npm run build --silent

say "kube-apiserver and kubectl (built from source on the first run: several minutes; cached after)"
start=$(date +%s)
kube_bin=$(bash hack/kube/build.sh)
echo "binaries in $kube_bin ($(elapsed "$start"))"

work=$(mktemp -d "${TMPDIR:-/tmp}/stoker-demo.XXXXXX")
pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for n in 1 2 3; do bash hack/containerd.sh clean "$work/node-$n/containerd" >/dev/null 2>&1; done
  bash hack/registry.sh clean "$work/open-registry" >/dev/null 2>&1
  bash hack/registry.sh clean "$work/auth-registry" >/dev/null 2>&1
  bash hack/kube/down.sh "$work/kube" >/dev/null 2>&1
  bash hack/agent-net.sh down "stkd$$" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
kubeconfig=$(STOKER_KUBE_BIN=$kube_bin bash hack/kube/up.sh "$work/kube" --owner-pid $$)
STOKER_KUBE_BIN=$kube_bin bash hack/kube/install-crd.sh "$kubeconfig" 2>/dev/null
kubectl() { "$kube_bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
kubectl create namespace stoker-system >/dev/null
echo "API server up, Warmup CRD installed ($(elapsed "$start"))"

say "certificates for mutual TLS between the controller and the agents"
pki=$work/pki
mkdir -p "$pki"
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
newkey "$pki/ca.key"
openssl req -x509 -new -key "$pki/ca.key" -subj /CN=stoker-demo-ca -days 2 -out "$pki/ca.crt" 2>/dev/null
issue() { # NAME EXTENSIONS
  newkey "$pki/$1.key"
  openssl req -new -key "$pki/$1.key" -subj "/CN=$1" -out "$pki/$1.csr" 2>/dev/null
  printf '%s\n' "$2" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
    -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
}
# Agents are dialled by address and checked by name, as the chart does (--agent-server-name).
issue stoker-agent $'subjectAltName=DNS:stoker-agent\nextendedKeyUsage=serverAuth'
issue stoker-controller 'extendedKeyUsage=clientAuth'
echo "CA, agent server certificate, controller client certificate in $pki"

say "two registries (open, and basic auth) with one random image each (~96 MB)"
open_host=$(bash hack/registry.sh start "$work/open-registry" --owner-pid $$)
user=demo
pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
auth_host=$(bash hack/registry.sh start "$work/auth-registry" --owner-pid $$ --htpasswd "$user" "$pass")
image_a=$open_host/demo/web:v1
image_b=$auth_host/demo/model-server:v1
bash hack/make-image.sh "$work/image-a" --layers 3 --layer-size 32000000 >/dev/null
bash hack/make-image.sh "$work/image-b" --layers 3 --layer-size 32000000 >/dev/null
bash hack/push-image.sh "$work/image-a" "$image_a" >/dev/null
bash hack/push-image.sh "$work/image-b" "$image_b" --creds "$user:$pass" >/dev/null
rm -rf "$work/image-a" "$work/image-b"
echo "open: $image_a"
echo "auth: $image_b"

say "three simulated nodes: a Node object, a containerd and a stoker agent each"
# The API server refuses loopback addresses in EndpointSlices (as for Pod IPs): agents listen on
# an address of the demo's own, on a veth pair it makes and removes (hack/agent-net.sh).
address=$(bash hack/agent-net.sh up "stkd$$" $$)
for n in 1 2 3; do
  node=node-$n
  mkdir -p "$work/$node"
  endpoint=$(bash hack/containerd.sh start "$work/$node/containerd" --owner-pid $$)
  echo "$endpoint" >"$work/$node/endpoint"
  bash hack/containerd.sh add-registry "$work/$node/containerd" "$open_host"
  bash hack/containerd.sh add-registry "$work/$node/containerd" "$auth_host"
  kubectl create -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels:
    kubernetes.io/hostname: $node
    stoker.io/demo: "true"
EOF
  node dist/bin/stoker.cjs agent --node-name "$node" --cri-endpoint "$endpoint" \
    --grpc-listen "$address:0" --http-listen 127.0.0.1:0 \
    --tls-cert-file "$pki/stoker-agent.crt" --tls-private-key-file "$pki/stoker-agent.key" --client-ca-file "$pki/ca.crt" \
    >"$work/$node/agent.log" 2>&1 &
  pids+=($!)
  port=""
  for _ in $(seq 150); do
    # (no line yet is not an error: grep finds nothing until the agent has started)
    port=$(sed -n '/"agent started"/s/.*"grpc":"[^"]*:\([0-9][0-9]*\)".*/\1/p' "$work/$node/agent.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.2
  done
  [ -n "$port" ] || { echo "the agent on $node did not start:" >&2; cat "$work/$node/agent.log" >&2; exit 1; }
  # What Kubernetes' endpointslice controller writes for an agent pod of the chart's DaemonSet.
  kubectl apply -f - >/dev/null <<SLICE
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: stoker-agent-$node
  namespace: stoker-system
  labels:
    kubernetes.io/service-name: stoker-agent
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
addressType: IPv4
ports:
  - name: grpc
    port: $port
    protocol: TCP
endpoints:
  - addresses: ["$address"]
    nodeName: $node
    conditions: { ready: true }
SLICE
  echo "$node: containerd $endpoint, agent pid ${pids[-1]} on $address:$port"
done
kubectl get endpointslices -n stoker-system -l kubernetes.io/service-name=stoker-agent \
  -o custom-columns='SLICE:.metadata.name,NODE:.endpoints[0].nodeName,ADDRESS:.endpoints[0].addresses[0],PORT:.ports[0].port,READY:.endpoints[0].conditions.ready'

say "the controller"
node dist/bin/stoker.cjs controller --kubeconfig "$kubeconfig" --namespace stoker-system \
  --tls-cert-file "$pki/stoker-controller.crt" --tls-private-key-file "$pki/stoker-controller.key" \
  --agent-ca-file "$pki/ca.crt" --agent-server-name stoker-agent --http-listen 127.0.0.1:0 >"$work/controller.log" 2>&1 &
pids+=($!)
echo "controller pid $!"

say "applying a Warmup: two images, the private one through an imagePullSecret"
kubectl create secret docker-registry regcred --docker-server="$auth_host" \
  --docker-username="$user" --docker-password="$pass" >/dev/null
echo "secret/regcred created (kubernetes.io/dockerconfigjson for $auth_host)"
cat >"$work/warmup.yaml" <<EOF
apiVersion: stoker.io/v1alpha1
kind: Warmup
metadata:
  name: demo
  namespace: default
spec:
  images:
    - image: $image_a
    - image: $image_b
  imagePullSecrets:
    - name: regcred
  nodes:
    selector:
      matchLabels:
        stoker.io/demo: "true"
  policy:
    parallelism: 2
    backoffLimit: 2
    timeoutSeconds: 300
EOF
cat "$work/warmup.yaml"
kubectl apply -f "$work/warmup.yaml"

say "live progress (status written by the controller at most once a second)"
start=$(date +%s)
mb() { awk -v b="${1:-0}" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
phase=""
last=""
while :; do
  read -r phase ok failed desired active done total < <(kubectl get warmup demo -o \
    jsonpath='{.status.phase} {.status.succeededNodes} {.status.failedNodes} {.status.desiredNodes} {.status.activeNodes} {.status.bytesDone} {.status.bytesTotal}{"\n"}' 2>/dev/null || echo) || true
  line=$(printf '%-9s nodes: %s/%s succeeded, %s failed, %s active   in flight: %s of %s' \
    "${phase:-Pending}" "${ok:-0}" "${desired:-?}" "${failed:-0}" "${active:-0}" "$(mb "$done")" "$(mb "$total")")
  if [ "$line" != "$last" ]; then
    printf '[%3ss] %s\n' "$(($(date +%s) - start))" "$line"
    last=$line
  fi
  case $phase in Succeeded | Failed) break ;; esac
  if [ $(($(date +%s) - start)) -gt 600 ]; then
    echo "the Warmup did not finish in 10 minutes; controller log:" >&2
    tail -20 "$work/controller.log" >&2
    exit 1
  fi
  sleep 0.5
done

say "kubectl get warmups"
kubectl get warmups -o wide
say "Events"
kubectl get events --field-selector involvedObject.name=demo --sort-by=.lastTimestamp \
  -o custom-columns='TYPE:.type,REASON:.reason,MESSAGE:.message'

say "asking each node's runtime (ctr -n k8s.io images ls) whether the images are there"
missing=0
for n in 1 2 3; do
  sock=$(sed 's|^unix://||' "$work/node-$n/endpoint")
  have=$(ctr -n k8s.io --address "$sock" images ls -q)
  for image in "$image_a" "$image_b"; do
    if grep -qxF "$image" <<<"$have"; then
      echo "node-$n: present  $image"
    else
      echo "node-$n: MISSING  $image"
      missing=1
    fi
  done
done
if grep -qF "$pass" "$work/controller.log" "$work"/node-*/agent.log; then
  echo "the registry password appeared in a log" >&2
  exit 1
fi
echo "the registry password appears in no controller or agent log"

say "done in $(elapsed "$demo_start")"
[ "$phase" = Succeeded ] && [ $missing -eq 0 ]
