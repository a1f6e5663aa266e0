#!/usr/bin/env bash
# `npm run demo`: Stoker's main job in a real cluster on this machine (hack/demo.ts): a kubelet node
# on Debian's containerd, Stoker installed with its Helm chart from its own images, a Warmup, and two
# Deployments started cold and warm. Everything runs under temp dirs and is torn down on exit, also
# on failure or Ctrl-C.
#
# The first run builds the Kubernetes binaries (about 20-30 minutes on 2 cores) and Stoker's images
# (a few minutes); both are cached under ~/.cache/stoker, and later runs take about two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
printf '\n\033[1m== %s\033[0m\n' "installing dependencies, building Stoker and the Kubernetes binaries (cached after the first run)"
bash hack/install-deps.sh
npm run build --silent
bash hack/kube/build.sh >/dev/null
npx tsx hack/demo.ts
printf '\n\033[1m== done in %s s\033[0m\n' "$(($(date +%s) - start))"
