#!/usr/bin/env bash
# Pushes an OCI image layout (from hack/make-image.sh) to a registry over plain HTTP, layers unchanged.
#
#   hack/push-image.sh OUTDIR REGISTRY/NAME:TAG [--creds USER:PASS]
#
# Prints the pushed reference.
set -euo pipefail
# shellcheck source=hack/lib/infra.sh
source "$(dirname "$0")/lib/infra.sh"

[ $# -ge 2 ] || die "usage: $0 OUTDIR REGISTRY/NAME:TAG [--creds USER:PASS]"
layout=$1 ref=$2
shift 2
creds=()
while [ $# -gt 0 ]; do
  case $1 in
    --creds)
      [ -n "${2:-}" ] && [[ $2 == *:* ]] || die "--creds must be USER:PASS"
      creds=(--dest-creds "$2")
      shift 2
      ;;
    *) die "unknown option: $1" ;;
  esac
done
[ -f "$layout/index.json" ] || die "not an OCI image layout (no index.json): $layout"
[[ $ref =~ ^[A-Za-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+:[A-Za-z0-9_.-]+$ ]] || die "reference must be REGISTRY/NAME:TAG, got: '$ref'"

# --preserve-digests keeps the layers uncompressed (skopeo would gzip them for a registry otherwise).
skopeo copy --quiet --insecure-policy --preserve-digests --dest-tls-verify=false "${creds[@]}" \
  "oci:$layout:latest" "docker://$ref" >&2
echo "$ref"
