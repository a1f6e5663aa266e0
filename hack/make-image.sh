#!/usr/bin/env bash
# Builds a unique test image as an OCI image layout: N layers, each an uncompressed tar
# (application/vnd.oci.image.layer.v1.tar) holding one file of random bytes, so no two images
# share a layer. Layers are built in parallel and written in one pass (no temporary payload file).
#
#   hack/make-image.sh OUTDIR [--layers N] [--layer-size BYTES] [--busybox]
#                                                                   (defaults: 1 layer of 1 MiB)
#
# --busybox adds a first layer with Debian's static busybox as /bin/busybox and /bin/sh, and makes the
# image runnable: by default it waits until stopped (SIGTERM ends it at once), so with --layers 0 it
# is a pod sandbox (pause) image; a pod may give its own command (sh -c ...).
#
# OUTDIR must be absent or empty; afterwards it holds oci-layout, index.json (tag "latest") and
# blobs/sha256/. Prints the manifest digest.
set -euo pipefail
# shellcheck source=hack/lib/infra.sh
source "$(dirname "$0")/lib/infra.sh"

[ $# -ge 1 ] || die "usage: $0 OUTDIR [--layers N] [--layer-size BYTES]"
out=$1
shift
layers=1
size=$((1024 * 1024))
busybox=""

while [ $# -gt 0 ]; do
  case $1 in
    --layers) layers=${2:-}; shift 2 || die "--layers needs a value" ;;
    --layer-size) size=${2:-}; shift 2 || die "--layer-size needs a value" ;;
    --busybox) busybox=/bin/busybox; shift ;;
    *) die "unknown option: $1" ;;
  esac
done
min_layers=1
[ -z "$busybox" ] || min_layers=0
[[ $layers =~ ^[0-9]+$ ]] && ((layers >= min_layers && layers <= 1000)) || die "--layers must be $min_layers..1000, got: '$layers'"
[ -z "$busybox" ] || [ -x "$busybox" ] || die "--busybox needs Debian's busybox-static ($busybox)"
[[ $size =~ ^[0-9]+$ ]] && ((size >= 1)) || die "--layer-size must be a positive number of bytes, got: '$size'"
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then die "output directory is not empty: $out"; fi

case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac

mkdir -p "$out/blobs/sha256"
out=$(cd "$out" && pwd)
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The tar header of a file of SIZE bytes, taken from GNU tar run on a sparse file of that size.
header_for() {
  local name=$1 bytes=$2 d
  d=$(mktemp -d "$work/hdr.XXXXXX")
  mkdir -p "$d/stoker"
  truncate -s "$bytes" "$d/stoker/$name"
  tar -C "$d" --format=gnu --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=0644 \
    -cf - "stoker/$name" 2>/dev/null | head -c 512 || true
  rm -rf "$d"
}

# Writes layer I to $work/I.tar and its sha256 to $work/I.sha256.
make_layer() {
  local i=$1 name pad
  name=layer-$i-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
  header_for "$name" "$size" >"$work/$i.hdr"
  [ "$(stat -c %s "$work/$i.hdr")" = 512 ] || die "could not make a tar header for $size bytes"
  pad=$(((512 - size % 512) % 512))
  {
    cat "$work/$i.hdr"
    head -c "$size" /dev/urandom
    head -c $((pad + 1024)) /dev/zero
  } | tee "$work/$i.tar" | sha256sum | cut -d' ' -f1 >"$work/$i.sha256"
}

jobs_max=$(nproc)
for ((i = 0; i < layers; i++)); do
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n; done
  make_layer "$i" &
done
while (($(jobs -rp | wc -l) > 0)); do wait -n; done

diff_ids=()
layer_descs=()
cmd='["/bin/true"]'
if [ -n "$busybox" ]; then
  mkdir -p "$work/busybox/bin"
  cp "$busybox" "$work/busybox/bin/busybox"
  ln -s busybox "$work/busybox/bin/sh"
  tar -C "$work/busybox" --format=gnu --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$work/busybox.tar" bin
  digest=$(sha256sum "$work/busybox.tar" | cut -d' ' -f1)
  bytes=$(stat -c %s "$work/busybox.tar")
  mv "$work/busybox.tar" "$out/blobs/sha256/$digest"
  diff_ids+=("\"sha256:$digest\"")
  layer_descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$digest\",\"size\":$bytes}")
  cmd='["/bin/sh","-c","trap \"exit 0\" TERM INT; /bin/busybox sleep 2147483647 & wait"]'
fi
for ((i = 0; i < layers; i++)); do
  [ -s "$work/$i.sha256" ] || die "building layer $i failed"
  digest=$(cat "$work/$i.sha256")
  bytes=$(stat -c %s "$work/$i.tar")
  mv "$work/$i.tar" "$out/blobs/sha256/$digest"
  diff_ids+=("\"sha256:$digest\"")
  layer_descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$digest\",\"size\":$bytes}")
done

# Writes JSON from stdin as a blob and prints "DIGEST SIZE".
put_blob() {
  local tmp digest
  tmp=$(mktemp "$work/blob.XXXXXX")
  jq -c . >"$tmp"
  digest=$(sha256sum "$tmp" | cut -d' ' -f1)
  chmod 0644 "$tmp"
  mv "$tmp" "$out/blobs/sha256/$digest"
  echo "$digest $(stat -c %s "$out/blobs/sha256/$digest")"
}

read -r config_digest config_size < <(
  IFS=,
  echo "{\"architecture\":\"$arch\",\"os\":\"linux\",\"created\":\"1970-01-01T00:00:00Z\",
    \"config\":{\"Cmd\":$cmd},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[${diff_ids[*]}]}}" | put_blob
)
read -r manifest_digest manifest_size < <(
  IFS=,
  echo "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",
    \"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_digest\",\"size\":$config_size},
    \"layers\":[${layer_descs[*]}]}" | put_blob
)
echo '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
jq -n --arg d "sha256:$manifest_digest" --argjson s "$manifest_size" \
  '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
    annotations: {"org.opencontainers.image.ref.name": "latest"}}]}' >"$out/index.json"
echo "sha256:$manifest_digest"
