#!/usr/bin/env bash
# Generates TypeScript types from every .proto under proto/ into proto/gen (or $1).
# The .proto files are the source of truth; hack/verify-proto.sh fails when proto/gen drifts.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-proto/gen}"
mapfile -t files < <(cd proto && find . -name '*.proto' -not -path './gen/*' | sed 's|^\./||' | sort)
rm -rf "$out"
mkdir -p "$out"
node node_modules/@grpc/proto-loader/build/bin/proto-loader-gen-types.js \
  --longs=Number --enums=String --defaults --oneofs --keepCase=false \
  --grpcLib=@grpc/grpc-js --importFileExtension=.js \
  -I proto -O "$out" "${files[@]}" >/dev/null
