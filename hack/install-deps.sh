#!/usr/bin/env bash
# Installs everything Stoker's build, tests, demo and benchmarks need on a Debian machine.
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  containerd            # the container runtime the tests pull through (CRI)
  docker-registry       # a real OCI registry on loopback
  apache2-utils         # htpasswd, for the registry's basic auth
  skopeo                # pushes test images (OCI layouts) to the registry
  openssl               # checks of the test certificates
  jq                    # JSON for the image scripts
  curl                  # readiness checks of the test registries
  vmtouch               # page-cache residency and eviction
  util-linux            # fincore
  fio                   # the disk's own read speed, for the benchmark
  sshfs openssh-server  # a real network filesystem on loopback, for the benchmark
  gcc libc6-dev         # builds Stoker's optional native helper (agent/native)
  etcd-server           # the API server's store
  runc                  # runs the real cluster's pods (hack/kube/cluster.sh)
  containernetworking-plugins # the pods' network: CNI bridge and host-local
  busybox-static        # the pause image and the test pods' shell
  iproute2              # the nodes' bridges and the agents' test addresses
  prometheus            # promtool and a Prometheus for the alert and dashboard tests
  buildah               # builds Stoker's own images from the Dockerfiles without a Docker engine
  mmdebstrap            # makes the images' Debian base (hack/images.sh)
  dpkg-repack           # turns the installed Node.js package into a .deb for that base
  dpkg-dev              # dpkg-scanpackages: a one-package apt repository of that .deb
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' own daemons (containerd, docker-registry, etcd, sshd, prometheus) from starting during the
  # install where no policy says otherwise; the tests run private instances on their own sockets and ports.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian packages start their own daemons; Stoker's scripts run private instances instead.
for svc in containerd docker-registry etcd prometheus; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# kube-apiserver, kubectl, helm, kubelet, kube-scheduler and kube-controller-manager for the
# integration tests and the demo: built from their Go modules once, then cached outside the
# repository (hack/kube/build.sh; slow the first time).
bash hack/kube/build.sh >/dev/null
