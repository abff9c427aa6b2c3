#!/usr/bin/env bash
# Container test: build the project's Dockerfile unchanged and run the image against two SCIM servers.
#
# No registry is reachable here, so this installs Debian's docker.io and debootstrap, starts a private
# dockerd (no bridge, no iptables), makes a stand-in python:3.12-slim from debootstrap plus the machine's
# CPython 3.12, builds the image, then checks: healthy; destination equals source; SIGTERM exits 0
# within the grace period; a restart on the same volume makes zero writes.
#
# Usage: .ci/container-test.sh [PYTHON]   (PYTHON: an interpreter with the project installed)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-python3}
TAG=scim-replicator:ci
BASE_REF=python:3.12-slim
PYMINOR=3.12
WORK=$(mktemp -d -t scimrep-container.XXXXXX)
NAME=scimrep-$$
t0=$SECONDS
step() { echo "== [$((SECONDS - t0))s] $*"; }
PIDS=()

# --- 1. tools --------------------------------------------------------------------------------------
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  step "apt-get install docker.io debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
fi

# --- 2. a private dockerd ---------------------------------------------------------------------------
mkdir -p "$WORK"/{data,exec,rootfs}
export DOCKER_HOST=unix://$WORK/docker.sock
DOCKER=/usr/bin/docker
dockerd -H "$DOCKER_HOST" --data-root "$WORK/data" --exec-root "$WORK/exec" \
  --pidfile "$WORK/dockerd.pid" --iptables=false --ip6tables=false --bridge=none \
  >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
cleanup() {
  $DOCKER rm -f "$NAME" >/dev/null 2>&1 || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  kill "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 60); do $DOCKER version >/dev/null 2>&1 && break; sleep 0.5; done
$DOCKER version --format 'dockerd {{.Server.Version}} ready' || { cat "$WORK/dockerd.log"; exit 1; }

# --- 3. stand-in base image ----------------------------------------------------------------------
MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PYSRC=$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$PYMINOR".* | sort -V | tail -1)
PYVER=$(basename "$PYSRC")
BASE_CACHE=${BASE_CACHE:-}
if [ -n "$BASE_CACHE" ] && [ -s "$BASE_CACHE/rootfs-$PYVER.tar" ]; then
  step "reusing $BASE_CACHE/rootfs-$PYVER.tar"
  BASE_TAR=$BASE_CACHE/rootfs-$PYVER.tar
else
  step "debootstrap bookworm from $MIRROR (+ CPython $PYVER)"
  R=$WORK/rootfs
  debootstrap --variant=minbase \
    --include=ca-certificates,netbase,tzdata,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g,libreadline8,libncursesw6,libuuid1,libgdbm6,libexpat1 \
    bookworm "$R" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -30 "$WORK/debootstrap.log"; exit 1; }
  tar -C "$PYSRC" --exclude=./lib/python$PYMINOR/test --exclude='__pycache__' \
      --exclude='./lib/python*/site-packages/*.pth' -cf - . | tar -C "$R/usr/local" -xf -
  grep -rlI "^#!$PYSRC/bin/python" "$R/usr/local/bin" | xargs -r sed -i "1s|^#!.*|#!/usr/local/bin/python$PYMINOR|"
  chroot "$R" /sbin/ldconfig
  cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
  BASE_TAR=$WORK/rootfs.tar
  tar -C "$R" -cf "$BASE_TAR" . && rm -rf "$R"
  if [ -n "$BASE_CACHE" ]; then mkdir -p "$BASE_CACHE"; cp "$BASE_TAR" "$BASE_CACHE/rootfs-$PYVER.tar"; fi
fi
step "docker import -> $BASE_REF"
$DOCKER import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change "ENV PYTHON_VERSION=$PYVER" \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' "$BASE_TAR" "$BASE_REF" >/dev/null

# --- 4. build the Dockerfile unchanged -----------------------------------------------------------------
step "docker build"
build_start=$SECONDS
DOCKER_BUILDKIT=1 $DOCKER build --network host --progress plain -t "$TAG" "$ROOT" >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; exit 1; }
build_seconds=$((SECONDS - build_start))
image_mb=$(( $($DOCKER image inspect "$TAG" --format '{{.Size}}') / 1000000 ))
user=$($DOCKER image inspect "$TAG" --format '{{.Config.User}}')
case "$user" in ""|root|0|0:*|root:*) echo "FAIL: image runs as root (USER='$user')"; exit 1;; esac

# --- 5. two SCIM servers on the host -------------------------------------------------------------------
start_server() {  # NAME ARGS...: starts bench.scim_server (not in a subshell, so PIDS is kept)
  local out=$WORK/$1.out; shift
  (cd "$ROOT" && exec "$PY" -m bench.scim_server "$@") >"$out" 2>&1 &  # exec: the PID is the server's
  PIDS+=($!)
}
server_url() {
  for _ in $(seq 100); do grep -q '^READY ' "$WORK/$1.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^READY //p' "$WORK/$1.out"
}
start_server source --users 200 --groups 10
start_server destination
SOURCE=$(server_url source)
DESTINATION=$(server_url destination)
[ -n "$SOURCE" ] && [ -n "$DESTINATION" ] || { echo "FAIL: SCIM servers did not start"; exit 1; }
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "servers: source $SOURCE, destination $DESTINATION; replicator health on :$PORT"

# --- 6. run the container -------------------------------------------------------------------------------
GRACE=10
step "docker run (USER=$user)"
run_start=$SECONDS
$DOCKER run -d --name "$NAME" --network host --health-interval 1s -v scimrep-state:/var/lib/scim-replicator \
  -e SCIMREP_SOURCE_URL="$SOURCE" -e SCIMREP_DESTINATION_URL="$DESTINATION" \
  -e SCIMREP_LISTEN="127.0.0.1:$PORT" -e SCIMREP_INTERVAL=2 -e SCIMREP_GRACE=$GRACE "$TAG" >/dev/null
wait_healthy() {
  local status=
  for _ in $(seq 90); do
    if [ "$($DOCKER inspect "$NAME" --format '{{.State.Running}}')" != true ]; then
      echo "FAIL: container exited: $($DOCKER inspect "$NAME" --format '{{.State.ExitCode}}')"; $DOCKER logs "$NAME" | tail -30; exit 1
    fi
    status=$($DOCKER inspect "$NAME" --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}')
    [ "$status" = healthy ] && return 0
    sleep 0.5
  done
  echo "FAIL: health status '$status'"; $DOCKER logs "$NAME" | tail -30; exit 1
}
wait_ready() {
  for _ in $(seq 120); do
    "$PY" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/readyz', timeout=2)" 2>/dev/null && return 0
    sleep 0.5
  done
  echo "FAIL: never ready"; $DOCKER logs "$NAME" | tail -30; exit 1
}
wait_healthy
healthy_seconds=$((SECONDS - run_start))
wait_ready
step "healthy after ${healthy_seconds}s and ready; checking the destination"
(cd "$ROOT" && "$PY" - "$SOURCE" "$DESTINATION") <<'PYCHECK'
import sys
from bench.common import check_equal
duplicates = check_equal(sys.argv[1], sys.argv[2])
assert duplicates == 0, f"{duplicates} duplicates on the destination"
print("destination equals source, no duplicates")
PYCHECK

# --- 7. SIGTERM: exit 0 within the grace period ----------------------------------------------------------
step "docker stop (SIGTERM, grace ${GRACE}s)"
stop_start=$(date +%s.%N)
$DOCKER stop -t $((GRACE + 5)) "$NAME" >/dev/null
stop_seconds=$(echo "$(date +%s.%N) - $stop_start" | bc 2>/dev/null || "$PY" -c "print(round($(date +%s.%N) - $stop_start, 2))")
code=$($DOCKER inspect "$NAME" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || { echo "FAIL: exit code after SIGTERM: $code"; $DOCKER logs "$NAME" | tail -20; exit 1; }
$DOCKER logs "$NAME" 2>&1 | tail -3

# --- 8. restart on the same volume: zero writes -----------------------------------------------------------
(cd "$ROOT" && "$PY" - "$DESTINATION") <<'PYCLEAR'
import sys
from bench.common import admin
admin(sys.argv[1], "clear-stats", {})
PYCLEAR
step "docker start again on the same volume"
$DOCKER start "$NAME" >/dev/null
wait_healthy
wait_ready
sleep 3  # at least one more incremental cycle
(cd "$ROOT" && "$PY" - "$DESTINATION") <<'PYWRITES'
import sys
from bench.common import admin
requests = admin(sys.argv[1], "stats")["requests"]
writes = sum(n for method, n in requests.items() if method in ("POST", "PUT", "PATCH", "DELETE"))
assert writes == 0, f"the second start wrote {writes} times: {requests}"
print(f"second start: requests {requests}, 0 writes")
PYWRITES
$DOCKER stop -t $((GRACE + 5)) "$NAME" >/dev/null

step "container test passed"
echo "image ${image_mb} MB; build ${build_seconds}s; start to healthy ${healthy_seconds}s; docker stop ${stop_seconds}s; exit code 0"
