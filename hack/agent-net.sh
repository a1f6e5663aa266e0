#!/usr/bin/env bash
# An address of Stoker's own for agents that run outside a cluster (tests, benchmarks, the demo).
#
# The controller finds agents in EndpointSlices, and the API server refuses loopback addresses
# there (as it does for Pod IPs). So agents listen on the host end of a veth pair whose other end
# sits in a network namespace made here; the address is in 10.213.0.0/16, on no other link, and
# all traffic to it stays on this machine. Nothing here touches the machine's own interfaces.
#
#   hack/agent-net.sh up NAME [OWNER_PID]   # prints the address; with OWNER_PID, the namespace and
#                                           # link go by themselves once that process is gone
#   hack/agent-net.sh down NAME             # idempotent
#
# NAME: up to 10 letters and digits (it names the namespace, and the links NAME-h and NAME-n).
set -euo pipefail

usage() {
  echo "usage: $0 up NAME [OWNER_PID] | down NAME" >&2
  exit 2
}

cmd=${1:-}
name=${2:-}
[[ $name =~ ^[a-z0-9]{1,10}$ ]] || usage

down() {
  ip netns del "$name" 2>/dev/null || true
  ip link del "$name-h" 2>/dev/null || true
}

case "$cmd" in
  up)
    owner=${3:-}
    down
    ip netns add "$name"
    ip link add "$name-h" type veth peer name "$name-n"
    ip link set "$name-n" netns "$name"
    # A /30 no interface of this machine uses yet.
    host=
    for block in $(shuf -i 0-16383 -n 64); do
      base=$((block * 4))
      candidate="10.213.$((base / 256)).$((base % 256 + 1))"
      if ! ip -4 -o addr show | grep -q "inet 10.213.$((base / 256)).$((base % 256))[0-9]*/"; then
        host=$candidate
        peer="10.213.$((base / 256)).$((base % 256 + 2))"
        break
      fi
    done
    if [[ -z $host ]]; then
      down
      echo "no free /30 in 10.213.0.0/16 for the agents' address" >&2
      exit 1
    fi
    ip addr add "$host/30" dev "$name-h"
    ip link set "$name-h" up
    ip -n "$name" addr add "$peer/30" dev "$name-n"
    ip -n "$name" link set "$name-n" up
    if [[ -n $owner ]]; then
      # Gone with its owner, also when the owner is killed before it can call down.
      setsid bash -c "while kill -0 $owner 2>/dev/null; do sleep 2; done; ip netns del $name 2>/dev/null; ip link del $name-h 2>/dev/null" \
        </dev/null >/dev/null 2>&1 &
    fi
    echo "$host"
    ;;
  down) down ;;
  *) usage ;;
esac
