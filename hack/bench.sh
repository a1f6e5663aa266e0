#!/usr/bin/env bash
# Stoker's benchmarks: each runs Stoker and the plain tool side by side, interleaved and repeated,
# and prints medians and ratios.
#   npm run bench                 # all of them
#   npm run bench -- images files # only those (images, agent-rss, agent-files, files, controller)
#   npm run bench -- soak         # memory over 1,050 Warmups (10 to 30 min; not in the default set)
#   npm run bench -- keepwarm     # 200 nodes kept warm: CPU per recheck round, API writes (not in the default set)
#   npm run bench -- shard        # one 2 GB file over sshfs vs vmtouch -t (5 to 10 min; not in the default set)
#   npm run bench -- shard-sweep  # the same file as 1/2/4/8 ranges, over sshfs and on local disk (opt-in)
#   npm run bench -- fleet-1000   # the controller's fan-out over 1,000 simulated nodes (opt-in)
#   npm run bench -- pods         # pod start, cold against warm, in a real cluster (opt-in; 10 to 20 min)
# Extra flags for one benchmark go straight to it: npx tsx test/bench/files.ts --rounds 7
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-deps.sh
npm run build >/dev/null
# Agents found through EndpointSlices listen on an address of the run's own (hack/agent-net.sh).
net="stkb$$"
STOKER_AGENT_ADDRESS=$(bash hack/agent-net.sh up "$net" $$)
export STOKER_AGENT_ADDRESS
trap 'bash hack/agent-net.sh down "$net"' EXIT
benches=("$@")
((${#benches[@]})) || benches=(images agent-rss agent-files files controller)
for b in "${benches[@]}"; do
  echo "=== bench: $b ==="
  case "$b" in
    # The agent's memory with 64 file tasks at once, and one task's time.
    agent-files) npx tsx test/bench/agent-rss.ts --files ;;
    # One 2 GB file over a network filesystem (sshfs on loopback), and the sweep that chose its ranges.
    shard) npx tsx test/bench/files.ts --only shard --rounds 3 ;;
    shard-sweep) npx tsx test/bench/files.ts --only shard-sweep --rounds 3 --big-mb 512 ;;
    fleet-1000) npx tsx test/bench/controller.ts --nodes 1000 ;;
    *) npx tsx "test/bench/$b.ts" ;;
  esac
  echo
done
