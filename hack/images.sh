#!/usr/bin/env bash
# Builds Stoker's container images without a Docker engine: bases made from Debian packages with
# mmdebstrap (bookworm, minbase) and this machine's Node.js package, then Dockerfile.agent and
# Dockerfile.controller built on them with buildah (chroot isolation, no daemon).
#
#   hack/images.sh build              builds both images, or reuses them when nothing they are
#                                     made from changed; prints agent=REF and controller=REF
#                                     (references in buildah's local storage)
#   hack/images.sh push HOST:PORT     builds as above and pushes both to a plain-HTTP registry as
#                                     HOST:PORT/stoker-agent:VERSION and HOST:PORT/stoker-controller:VERSION
#                                     (VERSION: package.json's); prints agent=REF and controller=REF
#   hack/images.sh storage            prints buildah's storage options, for inspecting the images:
#                                     buildah $(hack/images.sh storage) images
#
# Caches under ${STOKER_CACHE:-$HOME/.cache/stoker}/images: the Node.js .deb and the two bases, keyed
# by the Node.js and npm versions; each Stoker image, keyed by a hash of the files it is built from.
# The first run takes minutes (dpkg-repack, two mmdebstraps, npm ci); a run with no change, seconds.
#
# The run-time base ("stoker-base") holds Node.js (no npm), its Debian dependencies and a user
# "node" (uid 1000), as the official node images do; the build base ("stoker-build-base") adds npm,
# gcc and libc6-dev for the build stage.
set -euo pipefail
# shellcheck source=hack/lib/infra.sh
source "$(dirname "$0")/lib/infra.sh"
cd "$(dirname "$0")/.."

usage() { die "usage: $0 build | push HOST:PORT | storage"; }

cache=${STOKER_CACHE:-$HOME/.cache/stoker}/images
mirror=${STOKER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
storage=(--root "$cache/storage" --runroot "$cache/run" --storage-driver overlay)
bah() { buildah "${storage[@]}" "$@"; }
has_image() { bah inspect --type image "$1" >/dev/null 2>&1; }

# The Node.js package of this machine as a .deb in a one-package apt repository (dpkg-repack
# rebuilds it from the installed files; slow, so once per version).
node_repo() {
  local version=$1 repo=$cache/debs/nodejs-$1 tmp
  if [ ! -f "$repo/Packages" ]; then
    command -v dpkg-repack >/dev/null || die "dpkg-repack is missing (hack/install-deps.sh installs it)"
    tmp=$(mktemp -d "$cache/debs.XXXXXX")
    echo "repacking nodejs $version (once per version; a few minutes)" >&2
    (cd "$tmp" && dpkg-repack nodejs >/dev/null 2>&1 && dpkg-scanpackages . >Packages 2>/dev/null) ||
      { rm -rf "$tmp"; die "dpkg-repack nodejs failed"; }
    rm -rf "$repo"
    mv "$tmp" "$repo"
  fi
  echo "$repo"
}

# Removes the other tags of REF's repository (older builds), so the cache does not grow.
remove_others() {
  local ref=$1
  bah images --noheading --format '{{.Name}}:{{.Tag}}' --filter "reference=${ref%:*}" |
    grep -vxF "$ref" | xargs -r buildah "${storage[@]}" rmi >/dev/null 2>&1 || true
}

# mmdebstrap a bookworm minbase with Node.js (and EXTRA packages), then make it image NAME.
# HOOKS are more mmdebstrap --customize-hook commands.
make_base() {
  local name=$1 repo=$2 extra=$3
  shift 3
  local tar=$cache/base.tar ctr
  rm -f "$tar"
  echo "making $name with mmdebstrap (about 2 minutes)" >&2
  mmdebstrap --quiet --variant=minbase --include="nodejs${extra:+,$extra}" \
    "$@" \
    --customize-hook='chroot "$1" groupadd --gid 1000 node' \
    --customize-hook='chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
    --customize-hook="echo 'deb $mirror $suite main' >\"\$1/etc/apt/sources.list\"" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/usr/share/doc/* "$1"/usr/share/man/*' \
    "$suite" "$tar" "deb $mirror $suite main" "deb [trusted=yes] copy://$repo ./" ||
    die "mmdebstrap failed for $name"
  ctr=$(bah from scratch)
  bah add --quiet "$ctr" "$tar" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd node "$ctr"
  bah commit --quiet --rm "$ctr" "$name" >/dev/null
  rm -f "$tar"
  remove_others "$name"
}

bases() {
  local node_version npm_dir npm_version key repo
  node_version=$(dpkg-query -W -f='${Version}' nodejs 2>/dev/null) || die "the nodejs package is not installed"
  npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
  npm_version=$(node -p "require('$npm_dir/package.json').version")
  key=$(printf 'nodejs-%s-npm-%s-%s' "$node_version" "$npm_version" "$suite" | tr -c 'A-Za-z0-9_.\n-' '_')
  # The last part counts changes to each base's recipe below.
  base=localhost/stoker-base:$key-r2
  build_base=localhost/stoker-build-base:$key-r1
  if has_image "$base" && has_image "$build_base"; then return 0; fi
  repo=$(node_repo "$node_version")
  # The package's npm may be older than the machine's (npm updates itself in place): the run-time
  # base has none, the build base gets the machine's. Node's C headers (54 MB) are for building
  # addons and the translations (33 MB) for nobody: only the build base keeps the headers.
  has_image "$base" || make_base "$base" "$repo" "" \
    --customize-hook='rm -rf "$1/usr/lib/node_modules/npm" "$1/usr/bin/npm" "$1/usr/bin/npx"' \
    --customize-hook='rm -rf "$1/usr/include/node" "$1"/usr/share/locale/*'
  has_image "$build_base" || make_base "$build_base" "$repo" "gcc,libc6-dev" \
    --customize-hook='rm -rf "$1/usr/lib/node_modules/npm"' \
    --customize-hook="copy-in $npm_dir /usr/lib/node_modules"
}

# A hash of what one image is made from: the bases, its Dockerfile, .dockerignore and the files it
# copies (tracked or new, not ignored, tests left out).
inputs_hash() {
  local dockerfile=$1
  {
    echo "$base $build_base"
    git ls-files -co --exclude-standard -z -- "$dockerfile" .dockerignore package.json package-lock.json \
      tsconfig.json tsconfig.build.json hack/bundle.ts bin proto agent controller ':!:*.test.ts' |
      sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}

# Builds component NAME (agent or controller) unless an image from the same inputs exists; sets ref.
build_one() {
  local name=$1 hash start
  hash=$(inputs_hash "Dockerfile.$name")
  ref=localhost/stoker-$name:$hash
  if has_image "$ref"; then return 0; fi
  echo "building stoker-$name (buildah; log: $cache/build-$name.log)" >&2
  start=$SECONDS
  if ! bah bud --isolation chroot --layers --pull=false "${trust[@]}" \
    --build-arg "BASE=$base" --build-arg "BUILD_BASE=$build_base" \
    -f "Dockerfile.$name" -t "$ref" . >"$cache/build-$name.log" 2>&1; then
    tail -n 30 "$cache/build-$name.log" >&2
    die "building stoker-$name failed (log: $cache/build-$name.log)"
  fi
  echo "built stoker-$name in $((SECONDS - start)) s" >&2
  # The cached build-stage layers (npm ci) stay for the next build.
  remove_others "$ref"
}

# When this machine's npm trusts a CA file of its own (a TLS-intercepting proxy, a private
# registry), npm ci in the build stage gets it too, mounted only while RUN steps run: the images
# keep Debian's CAs.
trust=()
build_trust() {
  local ca
  ca=$(npm config get cafile 2>/dev/null || true)
  if [ -n "$ca" ] && [ "$ca" != null ] && [ -f "$ca" ]; then
    printf 'cafile=/etc/stoker-build-ca.crt\n' >"$cache/npmrc"
    trust=(--volume "$ca:/etc/stoker-build-ca.crt:ro" --volume "$cache/npmrc:/usr/etc/npmrc:ro")
  fi
}

build() {
  bases
  build_trust
  build_one agent
  agent=$ref
  build_one controller
  controller=$ref
}

cmd=${1:-}
case $cmd in
  build | push)
    mkdir -p "$cache"
    # One build at a time per cache (buildah's storage takes its own locks; this keeps two runs
    # from making the same base twice).
    exec 9>"$cache/lock"
    flock 9
    # Leave nothing mounted: the working containers of a build that was cut short, and the mount
    # buildah's overlay storage makes of its own directory.
    trap 'bah rm --all >/dev/null 2>&1; ! mountpoint -q "$cache/storage/overlay" || umount "$cache/storage/overlay"' EXIT
    build
    if [ "$cmd" = push ]; then
      host=${2:-}
      [[ $host =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || usage
      version=$(node -p 'require("./package.json").version')
      for pair in "agent=$agent" "controller=$controller"; do
        name=${pair%%=*}
        dest=$host/stoker-$name:$version
        bah push --quiet --tls-verify=false "${pair#*=}" "docker://$dest" >&2 ||
          die "pushing stoker-$name to $host failed"
        echo "$name=$dest"
      done
    else
      echo "agent=$agent"
      echo "controller=$controller"
    fi
    ;;
  storage) echo "${storage[*]}" ;;
  *) usage ;;
esac
