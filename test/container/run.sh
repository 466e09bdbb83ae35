#!/usr/bin/env bash
# The container test: builds the project's Dockerfile and runs a whole federation over three
# containers of it, on a machine with no Docker engine and no reachable image registry.
#
#   1. installs podman, buildah, runc and mmdebstrap from Debian when they are missing; if they
#      cannot be installed at all, prints `container test skipped: <why>` and exits 0;
#   2. makes a stand-in for node:20-bookworm-slim: a minbase Debian rootfs from this machine's
#      apt sources, this machine's Node 20 and npm, and its CA bundle;
#   3. builds the Dockerfile unchanged (podman build --isolation=chroot --pull=never);
#   4. runs one container per sample site, its input at /mnt/input and an output folder at
#      /mnt/output, ports 9000 and 9001 published on 127.0.0.1;
#   5. drives a whole federation over them and compares every container's result with the
#      in-process simulation's (test/container/drive.ts);
#   6. removes its containers, images and podman storage, whatever happened.
# Any failure after step 1 fails the test (exit 1).
#
# Podman runs with a configuration, storage and locks of its own under a temporary folder, so it
# neither sees nor touches any other use of podman on the machine. The stand-in's rootfs tarball
# is cached in /var/tmp/fc-container-test-cache (FC_CONTAINER_CACHE overrides; one file of about
# 240 MB, replaced when this machine's apt sources, node, npm or CA bundle change): delete the
# folder to start cold. Needs root (as CI and the developers' machines are).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE_DIR=${FC_CONTAINER_CACHE:-/var/tmp/fc-container-test-cache}
SUITE=bookworm
# The name the Dockerfile's `FROM node:20-bookworm-slim` resolves to in podman's local storage.
BASE_IMAGE=docker.io/library/node:20-bookworm-slim
APP_IMAGE=localhost/fc-container-test-app:latest
SITES=(biscoe dream torgersen)
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
TOOLS=(podman buildah runc mmdebstrap slirp4netns)
PACKAGES=(podman buildah runc mmdebstrap uidmap slirp4netns fuse-overlayfs)
# The machine's hard limits on open files and processes are below podman's defaults, which runc
# then cannot set.
RUN_LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
# Part of the cache key (with the apt sources, node, npm and the CA bundle): change it when the
# stand-in's recipe below changes.
ROOTFS_RECIPE="mmdebstrap --variant=minbase, no docs, man pages or locales; node, npm, CA, user node; v1"

started=$SECONDS
WORK=''
RUN_STATE=''
CONTAINERS=()

say() { printf '== container test: %s (%d s)\n' "$*" $((SECONDS - started)); }
skip() { printf 'container test skipped: %s\n' "$*"; exit 0; }
fail() { printf 'container test failed: %s\n' "$*" >&2; exit 1; }
# Runs a command with its output in a log file; on failure shows the log's end and fails.
logged() {
  local what=$1 log=$2
  shift 2
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    fail "$what (log: the lines above)"
  fi
}

# --- 1. tools -----------------------------------------------------------------------------------
install_tools() {
  local missing=() tool
  for tool in "${TOOLS[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [[ $(id -u) -eq 0 ]] || skip "needs root (podman as root, mmdebstrap, apt-get); running as $(id -un)"
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null 2>&1 || skip "${missing[*]} missing and no apt-get to install them"
  local log
  log=$(mktemp)
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"; } >"$log" 2>&1; then
    local why
    why=$(grep -E '^(E|W):' "$log" | tail -n 1)
    rm -f "$log"
    skip "apt-get could not install ${missing[*]}: ${why:-see apt-get}"
  fi
  rm -f "$log"
  for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is still missing after apt-get install"
  done
  say "installed ${PACKAGES[*]}"
}

# --- podman of our own ----------------------------------------------------------------------------
private_podman() {
  WORK=$(mktemp -d /var/tmp/fc-container-test.XXXXXX)
  # Podman's per-run state holds sockets named by 64-hex container ids, whose paths must stay
  # under 108 bytes: a short folder of its own.
  RUN_STATE=$(mktemp -d /tmp/fc-ct.XXXXXX)
  mkdir -p "$WORK/podman/cni" "$WORK/sites"
  cat >"$WORK/containers.conf" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
runtime = "runc"
tmp_dir = "$RUN_STATE"
volume_path = "$WORK/podman/volumes"

[network]
network_config_dir = "$WORK/podman/cni"
EOF
  cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/podman/storage"
runroot = "$WORK/podman/run"
EOF
  export CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage.conf"
}

cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [[ -n $WORK && -d $WORK ]]; then
    local name
    if ((code != 0)); then
      for name in "${CONTAINERS[@]}"; do
        printf -- '--- last lines of %s\n' "$name" >&2
        podman logs --tail 15 "$name" >&2 2>&1 || true
      done
    fi
    ((${#CONTAINERS[@]} == 0)) || podman --runtime runc rm -f -t 2 "${CONTAINERS[@]}" >/dev/null 2>&1 || true
    podman rmi -f "$APP_IMAGE" "$BASE_IMAGE" >/dev/null 2>&1 || true
    # The build stage's image and anything else left: this storage is this run's alone.
    podman rmi -a -f >/dev/null 2>&1 || true
    # containers/storage keeps its overlay folder mounted; nothing else may be left mounted.
    local mount
    while read -r mount; do
      umount -l "$mount" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | grep -F "$WORK/" | sort -r)
    rm -rf "$WORK" || printf 'container test: could not remove %s\n' "$WORK" >&2
  fi
  if [[ -n $RUN_STATE ]]; then rm -rf "$RUN_STATE"; fi
  rm -f "$CACHE_DIR"/*.partial 2>/dev/null || true
  if ((code == 0)); then printf '== container test: passed in %d s\n' $((SECONDS - started)); fi
  exit "$code"
}

# --- 2. the stand-in base image ---------------------------------------------------------------------
debian_sources() {
  local file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $file ]] || continue
    # Debian's own suites only: a third-party repository's keys and hosts are not the rootfs's.
    if grep -v '^[[:space:]]*#' "$file" | grep -qE "(^|[[:space:]])$SUITE(-updates|-security)?([[:space:]]|$)"; then
      printf '%s\n' "$file"
    fi
  done
}

make_base_image() {
  local node_bin npm_dir node_version
  node_bin=$(readlink -f "$(command -v node)")
  node_version=$("$node_bin" --version)
  [[ $node_version == v20.* ]] || fail "the stand-in for node:20 takes this machine's Node 20, but node is $node_version"
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  [[ -f $npm_dir/package.json ]] || fail "npm's own folder was not found (looked at $npm_dir)"
  [[ -s $CA_BUNDLE ]] || fail "no CA bundle at $CA_BUNDLE"

  local sources=()
  mapfile -t sources < <(debian_sources)
  ((${#sources[@]} > 0)) || fail "no apt source of Debian $SUITE on this machine"
  local key
  key=$( {
    printf '%s\n' "$ROOTFS_RECIPE" "$node_version" "$(npm --version)"
    cat "${sources[@]}"
    sha256sum "$node_bin" "$CA_BUNDLE"
  } | sha256sum | cut -c1-16)
  local tarball="$CACHE_DIR/node-20-bookworm-slim-stand-in-$key.tar"
  if [[ -s $tarball ]]; then
    say "stand-in rootfs from the cache ($tarball)"
  else
    mkdir -p "$CACHE_DIR"
    rm -f "$CACHE_DIR"/node-20-bookworm-slim-stand-in-*.tar
    local rootfs="$WORK/rootfs"
    logged "mmdebstrap could not make the Debian $SUITE rootfs" "$WORK/mmdebstrap.log" \
      mmdebstrap --variant=minbase --mode=root --format=directory \
      --aptopt='Acquire::Languages "none"' --aptopt='Acquire::Check-Valid-Until "false"' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      "$SUITE" "$rootfs" "${sources[@]}"
    # Laid out as the real image lays it out: node and npm under /usr/local, a `node` user 1000.
    install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
    mkdir -p "$rootfs/usr/local/lib/node_modules"
    cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
    # This machine's global npmrc (its CA file, its node headers) is not the real image's.
    rm -f "$rootfs/usr/local/lib/node_modules/npm/npmrc"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
    install -D -m 0644 "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    echo 'node:x:1000:' >>"$rootfs/etc/group"
    echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$rootfs/etc/passwd"
    install -d -o 1000 -g 1000 "$rootfs/home/node"
    chroot "$rootfs" /usr/local/bin/node --version >/dev/null ||
      fail "this machine's node does not run in the Debian $SUITE rootfs"
    tar -C "$rootfs" -cf "$tarball.partial" .
    rm -rf "$rootfs"
    mv "$tarball.partial" "$tarball"
    say "made the stand-in rootfs: Debian $SUITE minbase (mmdebstrap), node, npm, CA bundle (cached in $tarball)"
  fi

  logged "podman import of the stand-in failed" "$WORK/import.log" \
    podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=${node_version#v}" \
    --change 'CMD ["node"]' \
    "$tarball" "$BASE_IMAGE"
  say "stand-in $BASE_IMAGE: Debian $SUITE minbase, node $node_version, npm $(npm --version)"
}

# --- 3. the image -----------------------------------------------------------------------------------
build_image() {
  # --format docker keeps the HEALTHCHECK, which the OCI format has no field for. The CA bundle
  # is the stand-in's: npm's registry traffic from this machine needs it.
  logged "podman build failed" "$WORK/build.log" \
    podman build --isolation=chroot --pull=never --format docker \
    --build-arg "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt" \
    -t "$APP_IMAGE" -f "$ROOT/Dockerfile" "$ROOT"
  say "built $APP_IMAGE from the Dockerfile ($(podman image inspect --format '{{.Size}}' "$APP_IMAGE" | awk '{printf "%d MB", $1 / 1e6}'))"
}

check_image() {
  local version user ports listing
  inspect() { podman image inspect --format "$1" "$APP_IMAGE"; }
  version=$(node -p 'require(process.argv[1]).version' "$ROOT/package.json")
  [[ $(inspect '{{index .Labels "org.opencontainers.image.version"}}') == "$version" ]] ||
    fail "the image's version label is not package.json's $version (update ARG VERSION in the Dockerfile)"
  local label
  for label in title description; do
    [[ -n $(inspect "{{index .Labels \"org.opencontainers.image.$label\"}}") ]] || fail "the image has no $label label"
  done
  inspect '{{json .Labels}}' | grep -q '"org.opencontainers.image.source"' || fail "the image has no source label"
  user=$(inspect '{{.Config.User}}')
  [[ -n $user && $user != root && $user != 0 ]] || fail "the image runs as root"
  ports=$(inspect '{{json .Config.ExposedPorts}}')
  for port in 9000 9001 5000; do [[ $ports == *"\"$port/tcp\""* ]] || fail "the image does not expose $port ($ports)"; done
  [[ $(inspect '{{json .Config.Healthcheck}}') != null ]] || fail "the image has no healthcheck"
  # What the image carries: the compiled program and production dependencies, nothing else.
  listing=$(podman run --rm --runtime runc "${RUN_LIMITS[@]}" --network none --entrypoint /bin/sh "$APP_IMAGE" -c \
    'id -u; ls -A /app; ls /app/node_modules; find /app -path /app/node_modules -prune -o -name "*.ts" -print' 2>/dev/null)
  APP_UID=$(head -n 1 <<<"$listing")
  [[ $APP_UID =~ ^[0-9]+$ && $APP_UID != 0 ]] || fail "the image's process runs as uid '$APP_UID'"
  local unwanted
  for unwanted in test scripts sample src .git tsx typescript uvu '.*\.ts'; do
    if grep -qxE -- "$unwanted" <<<"$(tail -n +2 <<<"$listing" | sed 's#^/app/##')"; then
      fail "the image carries '$unwanted' (see .dockerignore and the Dockerfile's final stage)"
    fi
  done
  say "image checked: labels (version $version), user $user (uid $APP_UID), ports, healthcheck, no tests, sources or dev tools"
}

# --- 4. the containers --------------------------------------------------------------------------------
free_ports() {
  # Held all at once while asking, so they are distinct; released just before podman takes them.
  node -e '
    const net = require("node:net");
    const servers = Array.from({ length: Number(process.argv[1]) }, () => net.createServer());
    Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
      console.log(servers.map((s) => s.address().port).join(" "));
      servers.forEach((s) => s.close());
    });' "$1"
}

start_containers() {
  local ports=() index=0 site
  read -r -a ports <<<"$(free_ports $((2 * ${#SITES[@]})))"
  SITE_ARGS=()
  for site in "${SITES[@]}"; do
    local input="$WORK/sites/$site/input" output="$WORK/sites/$site/output" name="fc-container-test-$site"
    local api=${ports[$((2 * index))]} web=${ports[$((2 * index + 1))]}
    mkdir -p "$input" "$output"
    cp -R "$ROOT/sample/$site/." "$input/"
    # The platform hands each site a writable output folder; here the image's user must own it.
    chown "$APP_UID" "$output"
    CONTAINERS+=("$name")
    logged "podman run of $name failed" "$WORK/run-$site.log" \
      podman --runtime runc run -d --name "$name" "${RUN_LIMITS[@]}" \
      --network slirp4netns:port_handler=slirp4netns \
      -p "127.0.0.1:$api:9000" -p "127.0.0.1:$web:9001" \
      -v "$input:/mnt/input:ro" -v "$output:/mnt/output" \
      "$APP_IMAGE"
    SITE_ARGS+=("$site=$api,$web,$output")
    index=$((index + 1))
  done
  say "started ${#SITES[@]} containers: ${SITE_ARGS[*]}"
}

check_health() {
  local name
  for name in "${CONTAINERS[@]}"; do
    podman healthcheck run "$name" >/dev/null 2>&1 || fail "the healthcheck of $name failed"
    [[ $(podman inspect --format '{{.State.Status}}' "$name") == running ]] || fail "$name is not running"
  done
  say "every container is running and healthy"
}

# --- main -----------------------------------------------------------------------------------------------
install_tools
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[[ -d $ROOT/node_modules/tsx ]] || fail "run npm ci first (the test drives the containers with npm run simulate)"
private_podman
say "podman $(podman version --format '{{.Client.Version}}'), runc $(runc --version | awk 'NR == 1 {print $3}'), work folder $WORK"
make_base_image
build_image
check_image
start_containers
say "driving the federation (test/container/drive.ts)"
(cd "$ROOT" && node --import tsx test/container/drive.ts --work "$WORK" "${SITE_ARGS[@]}") || fail "the federation over the containers did not pass"
check_health
