#!/usr/bin/env bash
# A private containerd with everything under one directory, so several can run side by side.
#
#   hack/containerd.sh start DIR [--owner-pid PID [--owner-cleanup]] [--snapshotter native|overlayfs]
#                                [--root-tmpfs SIZE] [--cni CONF_DIR] [--sandbox-image REF]
#                                                 start (or restart on the same DIR, keeping its images
#                                                 and its snapshotter, which is also in DIR/snapshotter);
#                                                 prints the CRI endpoint unix://DIR/containerd.sock;
#                                                 with --owner-pid, containerd is stopped when PID exits
#                                                 (and DIR removed too, with --owner-cleanup); with
#                                                 --root-tmpfs, containerd's root (content store and
#                                                 snapshots) is a tmpfs of SIZE (bytes, or 48m, 1g)
#                                                 mounted at DIR/root, to make a node whose disk is full;
#                                                 --cni and --sandbox-image make it a kubelet's runtime:
#                                                 pod networks from the CNI configs in CONF_DIR (plugins
#                                                 from Debian's containernetworking-plugins) and sandbox
#                                                 (pause) containers from REF. Both are kept on a restart.
#   hack/containerd.sh add-registry DIR HOST:PORT pull from HOST:PORT over plain HTTP (takes effect at once)
#   hack/containerd.sh stop DIR                   SIGTERM, SIGKILL after a bound, wait until gone
#   hack/containerd.sh kill DIR                   SIGKILL at once (a runtime crash)
#   hack/containerd.sh clean DIR                  stop, unmount anything under DIR, remove DIR
#   hack/containerd.sh unmount-root DIR           stop, and unmount the tmpfs of --root-tmpfs (keeps DIR)
#   hack/containerd.sh endpoint DIR               prints the CRI endpoint
#
# The CRI plugin uses the native snapshotter unless told otherwise (overlayfs is what nodes use and
# unpacks many-layer images much faster, but needs a filesystem that supports it), its streaming server takes a port chosen by the kernel,
# and no debug or metrics listener is opened. Without --cni, CNI is not configured: containerd logs a
# CNI error at start, which is harmless for image pulls. restrict_oom_score_adj is on: a container may
# not lower its OOM score below containerd's, which machines without CAP_SYS_RESOURCE need for runc to
# start any pod sandbox. Log: DIR/containerd.log; pid: DIR/containerd.pid.
set -euo pipefail
# shellcheck source=hack/lib/infra.sh
source "$(dirname "$0")/lib/infra.sh"

usage() { die "usage: $0 start DIR [--owner-pid PID [--owner-cleanup]] [--snapshotter native|overlayfs] [--root-tmpfs SIZE] | stop|kill|clean|unmount-root|endpoint DIR | add-registry DIR HOST:PORT"; }

cmd=${1:-}
[ $# -ge 2 ] || usage
dir=$2
[ -n "$dir" ] || usage
case $cmd in start) mkdir -p "$dir" ;; esac
[ -d "$dir" ] || { [ "$cmd" = stop ] || [ "$cmd" = kill ] || [ "$cmd" = clean ] || [ "$cmd" = unmount-root ]; } || die "no such directory: $dir"
[ -d "$dir" ] && dir=$(cd "$dir" && pwd)

sock=$dir/containerd.sock
CNI_PLUGINS=/usr/lib/cni
pidfile=$dir/containerd.pid
# A unix socket path is limited to 107 bytes (plus the ".ttrpc" suffix).
((${#sock} <= 100)) || die "directory path too long for a unix socket: $dir (use a shorter one, e.g. from mktemp -d)"

write_config() {
  local sandbox_line="" cni_bin=$dir/cni/bin
  [ -z "$cni_conf" ] || cni_bin=$CNI_PLUGINS
  [ -z "$sandbox_image" ] || sandbox_line="sandbox_image = \"$sandbox_image\""
  mkdir -p "$dir/root" "$dir/state" "$dir/certs.d" "$dir/opt" "$dir/cni/bin" "$dir/cni/conf"
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$dir/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    disable_tcp_service = true
    restrict_oom_score_adj = true
    $sandbox_line
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "$snapshotter"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$cni_bin"
      conf_dir = "${cni_conf:-$dir/cni/conf}"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$dir/certs.d"
TOML
}

# Mounts a tmpfs of SIZE at DIR/root unless one is mounted there already (a restart keeps its content).
mount_root_tmpfs() {
  local size=$1
  [[ $size =~ ^[0-9]+[kmg]?$ ]] || die "--root-tmpfs must be a size in bytes or with k, m or g (48m), got: '$size'"
  mkdir -p "$dir/root"
  if ! mountpoint -q "$dir/root"; then
    [ -z "$(ls -A "$dir/root")" ] || die "--root-tmpfs: $dir/root already holds a containerd root on another filesystem"
    mount -t tmpfs -o "size=$size,mode=0711" stoker-containerd-root "$dir/root" || die "cannot mount a tmpfs at $dir/root (needs root)"
  fi
  echo "$size" >"$dir/root-tmpfs"
}

start() {
  local owner="" owner_cleanup="" root_tmpfs=""
  # A restart keeps the snapshotter the directory was started with, its tmpfs root and its node settings.
  snapshotter=$(cat "$dir/snapshotter" 2>/dev/null || echo native)
  root_tmpfs=$(cat "$dir/root-tmpfs" 2>/dev/null || true)
  cni_conf=$(cat "$dir/cni-conf" 2>/dev/null || true)
  sandbox_image=$(cat "$dir/sandbox-image" 2>/dev/null || true)
  while [ $# -gt 0 ]; do
    case $1 in
      --owner-pid) owner=${2:-}; shift 2 || die "--owner-pid needs a value" ;;
      --owner-cleanup) owner_cleanup=1; shift ;;
      --snapshotter) snapshotter=${2:-}; shift 2 || die "--snapshotter needs a value" ;;
      --root-tmpfs) root_tmpfs=${2:-}; shift 2 || die "--root-tmpfs needs a value" ;;
      --cni) cni_conf=${2:-}; shift 2 || die "--cni needs a value" ;;
      --sandbox-image) sandbox_image=${2:-}; shift 2 || die "--sandbox-image needs a value" ;;
      *) die "unknown option: $1" ;;
    esac
  done
  check_owner "$owner"
  [[ $snapshotter == native || $snapshotter == overlayfs ]] || die "--snapshotter must be native or overlayfs, got: '$snapshotter'"
  if pid_alive "$pidfile"; then
    die "containerd already runs for $dir (pid $(cat "$pidfile"))"
  fi
  rm -f "$sock" "$sock.ttrpc"
  [ -z "$root_tmpfs" ] || mount_root_tmpfs "$root_tmpfs"
  if [ -n "$cni_conf" ]; then
    [ -d "$cni_conf" ] || die "--cni: no such directory: $cni_conf"
    [ -x "$CNI_PLUGINS/bridge" ] || die "--cni needs the CNI plugins in $CNI_PLUGINS (Debian's containernetworking-plugins)"
    echo "$cni_conf" >"$dir/cni-conf"
  fi
  [ -z "$sandbox_image" ] || echo "$sandbox_image" >"$dir/sandbox-image"
  write_config
  echo "$snapshotter" >"$dir/snapshotter"
  # setsid: the daemon outlives this script and is not hit by signals sent to the caller's process group.
  setsid containerd --config "$dir/config.toml" >>"$dir/containerd.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local i
  for ((i = 0; i < 300; i++)); do
    if ! pid_alive "$pidfile"; then
      tail -n 20 "$dir/containerd.log" >&2
      die "containerd exited during start-up (log: $dir/containerd.log)"
    fi
    if [ -S "$sock" ] && ctr --address "$sock" --timeout 2s version >/dev/null 2>&1; then
      [ -z "$owner" ] || watch_owner "$owner" "$pidfile" ${owner_cleanup:+bash "$SELF" clean "$dir"}
      echo "unix://$sock"
      return 0
    fi
    sleep 0.1
  done
  stop_pidfile "$pidfile" 5
  tail -n 20 "$dir/containerd.log" >&2
  die "containerd did not answer on $sock within 30s (log: $dir/containerd.log)"
}

add_registry() {
  local host=${1:-}
  [[ $host =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || die "registry must be HOST:PORT, got: '$host'"
  mkdir -p "$dir/certs.d/$host"
  cat >"$dir/certs.d/$host/hosts.toml.tmp" <<TOML
server = "http://$host"

[host."http://$host"]
  capabilities = ["pull", "resolve"]
TOML
  mv "$dir/certs.d/$host/hosts.toml.tmp" "$dir/certs.d/$host/hosts.toml"
}

clean() {
  stop_pidfile "$pidfile" 10
  [ -d "$dir" ] || return 0
  # Anything containerd left mounted under DIR (deepest first), then the tree itself.
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
  chmod -R u+w "$dir" 2>/dev/null || true
  rm -rf "$dir"
}

unmount_root() {
  stop_pidfile "$pidfile" 10
  if [ -d "$dir/root" ] && mountpoint -q "$dir/root"; then
    umount "$dir/root" 2>/dev/null || umount -l "$dir/root"
  fi
  rm -f "$dir/root-tmpfs"
}

case $cmd in
  start) start "${@:3}" ;;
  add-registry) add_registry "${3:-}" ;;
  stop) stop_pidfile "$pidfile" 10 ;;
  kill) kill_pidfile "$pidfile" ;;
  clean) clean ;;
  unmount-root) unmount_root ;;
  endpoint) echo "unix://$sock" ;;
  *) usage ;;
esac
