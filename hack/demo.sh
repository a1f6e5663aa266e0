#!/usr/bin/env bash
# `npm run demo`: Stoker warms a private containerd from two registries on loopback, one open and
# one behind basic auth, then warms it again (already warm: nothing to pull). Everything it starts
# runs under one temp dir and is torn down on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

bash hack/install-deps.sh
npm run build --silent

work=$(mktemp -d "${TMPDIR:-/tmp}/stoker-demo.XXXXXX")
cleanup() {
  set +e
  bash hack/containerd.sh clean "$work/containerd" 2>/dev/null
  bash hack/registry.sh clean "$work/open-registry" 2>/dev/null
  bash hack/registry.sh clean "$work/auth-registry" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting containerd and two registries (open, and basic auth)"
endpoint=$(bash hack/containerd.sh start "$work/containerd")
open_host=$(bash hack/registry.sh start "$work/open-registry")
user=demo
pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
auth_host=$(bash hack/registry.sh start "$work/auth-registry" --htpasswd "$user" "$pass")
bash hack/containerd.sh add-registry "$work/containerd" "$open_host"
bash hack/containerd.sh add-registry "$work/containerd" "$auth_host"
echo "containerd:    $endpoint"
echo "open registry: $open_host"
echo "auth registry: $auth_host (user $user)"

say "building and pushing two random images (~80 MB each)"
image_a=$open_host/demo/web:v1
image_b=$auth_host/demo/model-server:v1
bash hack/make-image.sh "$work/image-a" --layers 4 --layer-size 20000000 >/dev/null
bash hack/make-image.sh "$work/image-b" --layers 4 --layer-size 20000000 >/dev/null
bash hack/push-image.sh "$work/image-a" "$image_a"
bash hack/push-image.sh "$work/image-b" "$image_b" --creds "$user:$pass"
rm -rf "$work/image-a" "$work/image-b"

# A Docker config.json with the auth registry's credentials, as `docker login` writes it.
jq -n --arg host "$auth_host" --arg auth "$(printf '%s:%s' "$user" "$pass" | base64 -w0)" \
  '{auths: {($host): {auth: $auth}}}' >"$work/config.json"
chmod 600 "$work/config.json"

warm() {
  node dist/bin/stoker.js warm --cri-endpoint "$endpoint" --auth-file "$work/config.json" \
    --image "$image_a" --image "$image_b"
}
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f s", e - s }'; }

say "stoker warm (cold: both images are pulled)"
start=$(date +%s.%N)
warm
echo "took $(elapsed "$start")"

say "stoker warm again (already warm: nothing to pull)"
start=$(date +%s.%N)
warm
echo "took $(elapsed "$start")"

say "stoker warm --pull-policy Always without credentials (the auth registry refuses)"
mkdir -p "$work/no-docker-config"
rc=0
DOCKER_CONFIG=$work/no-docker-config node dist/bin/stoker.js warm --cri-endpoint "$endpoint" \
  --pull-policy Always --image "$image_b" || rc=$?
echo "exit code $rc"

say "images in the runtime (ctr -n k8s.io images ls)"
ctr -n k8s.io --address "${endpoint#unix://}" images ls -q | grep -v '^sha256:'
