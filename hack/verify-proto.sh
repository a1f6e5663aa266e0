#!/usr/bin/env bash
# Fails when the generated types in proto/gen differ from what the .proto files produce.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash hack/gen-proto.sh "$tmp/gen"
if ! diff -r proto/gen "$tmp/gen" >"$tmp/diff"; then
  echo "proto/gen is out of date with the .proto files; run hack/gen-proto.sh" >&2
  head -50 "$tmp/diff" >&2
  exit 1
fi
echo "proto/gen matches the .proto files"
