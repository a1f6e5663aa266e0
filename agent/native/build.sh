#!/usr/bin/env bash
# Builds Stoker's optional native helper (page-cache residency through mincore on the reader's
# own descriptor; openat, fdopendir and fstatat for walking below the allowed roots) into
# agent/native/build/stoker_native.node. It needs only a C compiler and Node's headers
# (Node-API), no network. When either is missing it says why and exits 0: Stoker then measures
# residency with util-linux's fincore and opens files through /proc/self/fd instead.
set -euo pipefail
cd "$(dirname "$0")"
out=build/stoker_native.node
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "native helper not built: no C compiler ($cc); residency falls back to fincore, file walks to /proc/self/fd" >&2
  exit 0
fi
include=$(node -p 'require("path").join(require("path").dirname(require("path").dirname(process.execPath)), "include", "node")')
if [ ! -f "$include/node_api.h" ]; then
  echo "native helper not built: Node's headers are not at $include; residency falls back to fincore, file walks to /proc/self/fd" >&2
  exit 0
fi
mkdir -p build
if ! "$cc" -O2 -Wall -Wextra -Werror -shared -fPIC -DNODE_GYP_MODULE_NAME=stoker_native -I"$include" -o "$out.tmp" stoker_native.c; then
  echo "native helper not built: the compiler failed; residency falls back to fincore, file walks to /proc/self/fd" >&2
  rm -f "$out.tmp"
  exit 0
fi
mv "$out.tmp" "$out"
echo "built agent/native/$out" >&2
