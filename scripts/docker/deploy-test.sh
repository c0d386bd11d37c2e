#!/usr/bin/env bash
# Runs the compose deployment for real on this machine, on loopback only, and
# takes it down again. CI runs it (.ci/run); run it by hand the same way, as root:
#
#   scripts/docker/deploy-test.sh
#
# Steps: start dockerd if none runs (stopped again at the end); make the base image
# debian:bookworm-slim with mmdebstrap if it is missing (no registry is needed);
# build the Dockerfile's `runtime` stage and add the debug binary of this checkout
# (cargo build --bin tutti; DEPLOY_TEST_BINARY=path uses another) instead of the
# release build of the last stage; `docker-compose up -d` with .env.example plus
# free loopback ports; wait for /healthz and for the compose healthcheck's
# `healthy`; create a conference over TCP 4011 and call it with SIPp; restart and
# find the conference and the database in the volume; then remove the containers,
# the volume and the image with the binary. The base image and the runtime stage
# stay cached. Needs docker.io, docker-compose, mmdebstrap, sip-tester, curl,
# python3. Every wait is bounded; any failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

# The legacy builder: offline there is no buildx and no `# syntax=` frontend.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
# The shell's TUTTI_* variables would win over the test's .env.
for v in "${!TUTTI_@}"; do unset "$v"; done

runtime_image=tutti-deploy-test:runtime
image=tutti-deploy-test:latest
project=tuttideploytest$$
tmp=$(mktemp -d /tmp/tutti-deploy-test.XXXXXX)
dockerd_pid=
compose_up=
t0=$SECONDS

say() { printf 'deploy-test: [%3ds] %s\n' $((SECONDS - t0)) "$*"; }
fail() {
  printf 'deploy-test: FAILED: %s\n' "$*" >&2
  exit 1
}

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every half second until it
# succeeds; fails after SECONDS.
wait_for() {
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what: not after ${limit}s"
    sleep 0.5
  done
}

dc() {
  timeout 120 docker-compose --project-name "$project" --env-file "$tmp/test.env" \
    -f "$repo/docker-compose.yml" -f "$tmp/override.yml" "$@"
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$compose_up" ]; then
    if [ $rc -ne 0 ]; then
      echo "deploy-test: the container's log:" >&2
      dc logs --no-color --tail=60 >&2
      cid=$(dc ps -q tutti 2>/dev/null)
      [ -n "$cid" ] && docker inspect -f '{{json .State.Health}}' "$cid" >&2
    fi
    dc down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1 || echo "deploy-test: docker-compose down failed" >&2
  fi
  if [ -n "$dockerd_pid" ] || docker info >/dev/null 2>&1; then
    docker rmi "$image" >/dev/null 2>&1
  fi
  if [ -n "$dockerd_pid" ]; then
    [ $rc -ne 0 ] && { echo "deploy-test: dockerd's log:" >&2; tail -20 "$tmp/dockerd.log" >&2; }
    kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$dockerd_pid" 2>/dev/null && { echo "deploy-test: dockerd did not stop; killing it" >&2; kill -9 "$dockerd_pid"; }
    wait "$dockerd_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
  if [ $rc -eq 0 ]; then say "passed"; else echo "deploy-test: failed after $((SECONDS - t0))s" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in docker dockerd docker-compose mmdebstrap sipp curl python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing (Debian: docker.io docker-compose mmdebstrap sip-tester curl python3)"
done

# 1. The Docker engine.
if docker info >/dev/null 2>&1; then
  say "using the running Docker engine"
else
  say "starting dockerd"
  nice -n 19 dockerd >"$tmp/dockerd.log" 2>&1 &
  dockerd_pid=$!
  deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    kill -0 "$dockerd_pid" 2>/dev/null || fail "dockerd exited: $(tail -5 "$tmp/dockerd.log")"
    ((SECONDS < deadline)) || fail "dockerd: not ready after 60s"
    sleep 0.5
  done
fi

# 2. The base image, made from Debian's packages when it cannot be pulled.
if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  say "making debian:bookworm-slim with mmdebstrap"
  sources=()
  [ -f /etc/apt/sources.list.d/debian.sources ] && sources=(/etc/apt/sources.list.d/debian.sources)
  clean='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";'
  timeout 600 nice -n 10 mmdebstrap --variant=minbase --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --customize-hook="printf '%s\n' '$clean' > \"\$1/etc/apt/apt.conf.d/docker-clean\"" \
    --customize-hook='rm -f "$1"/var/cache/apt/*.bin; rm -rf "$1"/var/lib/apt/lists/*' \
    bookworm "$tmp/rootfs.tar" "${sources[@]}" >"$tmp/mmdebstrap.log" 2>&1 ||
    fail "mmdebstrap: $(tail -20 "$tmp/mmdebstrap.log")"
  docker import -c 'CMD ["bash"]' "$tmp/rootfs.tar" debian:bookworm-slim >/dev/null
  rm -f "$tmp/rootfs.tar"
fi

# 3. The image: the Dockerfile's runtime stage plus a binary built here.
if [ -n "${DEPLOY_TEST_BINARY:-}" ]; then
  binary=$DEPLOY_TEST_BINARY
else
  say "cargo build --bin tutti (debug)"
  timeout 1800 nice -n 10 cargo build --quiet --locked --bin tutti || fail "cargo build"
  binary=${CARGO_TARGET_DIR:-target}/debug/tutti
fi
[ -x "$binary" ] || fail "no binary at $binary"
mkdir -p "$tmp/ctx"
if command -v strip >/dev/null; then strip -o "$tmp/ctx/tutti" "$binary"; else cp "$binary" "$tmp/ctx/tutti"; fi
say "docker build --target runtime"
timeout 600 nice -n 10 docker build --target runtime -t "$runtime_image" . >"$tmp/build.log" 2>&1 ||
  fail "docker build --target runtime: $(tail -20 "$tmp/build.log")"
printf 'FROM %s\nCOPY tutti /usr/local/bin/tutti\n' "$runtime_image" >"$tmp/ctx/Dockerfile"
timeout 300 nice -n 10 docker build -t "$image" "$tmp/ctx" >"$tmp/build.log" 2>&1 ||
  fail "docker build (binary): $(tail -20 "$tmp/build.log")"

# 4. The .env: .env.example with free loopback ports and a control password.
read -r sip_port control_port http_port rtp_low sipp_port sipp_media < <(python3 - <<'PY'
import random, socket
def free(port, kinds=(socket.SOCK_DGRAM, socket.SOCK_STREAM)):
    for kind in kinds:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True
taken = set()
def pick(width=1, step=1):
    while True:
        p = random.randrange(40000, 59000, step)
        span = range(p, p + width)
        if not taken.intersection(span) and all(free(q) for q in span):
            taken.update(span)
            return p
# SIP, 4011, HTTP, an RTP range of 8 ports (even start), SIPp's SIP and media ports.
print(pick(), pick(), pick(), pick(8, 2), pick(), pick(2, 2))
PY
)
[ -n "$sipp_media" ] || fail "no free loopback ports found"
rtp_high=$((rtp_low + 7))
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
conference=7$(printf '%04d' $((RANDOM % 10000)))
set_here='TUTTI_(SIP_LISTEN|RTP_PORTS|CONTROL_LISTEN|HTTP_LISTEN|CONTROL_PASSWORD|TIMEZONE|MAX_CALLS|LOG)='
grep -Ev "^$set_here" .env.example >"$tmp/test.env"
cat >>"$tmp/test.env" <<EOF
TUTTI_SIP_LISTEN=127.0.0.1:$sip_port
TUTTI_RTP_PORTS=$rtp_low-$rtp_high
TUTTI_CONTROL_LISTEN=127.0.0.1:$control_port
TUTTI_HTTP_LISTEN=127.0.0.1:$http_port
TUTTI_CONTROL_PASSWORD=$password
TUTTI_TIMEZONE=Europe/London
TUTTI_MAX_CALLS=20
TUTTI_LOG=info,tutti_sip=debug
EOF
printf 'services:\n  tutti:\n    image: %s\n' "$image" >"$tmp/override.yml"
# The ulimits commented out in docker-compose.yml, where dockerd may raise limits
# (CAP_SYS_RESOURCE, bit 24): runc refuses them otherwise, as here in a container.
dockerd_caps=$(awk '/^CapEff:/ {print $2}' "/proc/$(pgrep -xo dockerd)/status" 2>/dev/null || true)
raise_limits=
if [ -n "$dockerd_caps" ] && (( (16#$dockerd_caps >> 24) & 1 )); then
  raise_limits=1
  printf '    ulimits:\n      nice: 30\n' >>"$tmp/override.yml"
fi

# 5. Up, healthy.
say "docker-compose up -d (SIP 127.0.0.1:$sip_port, 4011 on $control_port, HTTP on $http_port, RTP $rtp_low-$rtp_high)"
compose_up=1
dc up -d --no-build >"$tmp/up.log" 2>&1 || fail "docker-compose up: $(tail -5 "$tmp/up.log")"
cid=$(dc ps -q tutti)
[ -n "$cid" ] || fail "no tutti container"
# healthy: the compose healthcheck's last run, since the container's last start,
# passed. Times compare as text to the second (both RFC 3339, UTC).
health() {
  local state
  state=$(docker inspect -f '{{.State.Health.Status}} {{.State.StartedAt}} {{range .State.Health.Log}}{{.Start}} {{end}}' "$cid")
  set -- $state
  local status=$1 started=${2:0:19} last=${!#}
  [ "$status" = healthy ] && [ $# -ge 3 ] && [[ ! "${last:0:19}" < "$started" ]]
}
wait_for 30 "GET /healthz on 127.0.0.1:$http_port" curl -fsS --max-time 2 "http://127.0.0.1:$http_port/healthz"
wait_for 60 "the compose healthcheck's healthy" health
say "healthy: $(curl -fsS --max-time 2 "http://127.0.0.1:$http_port/healthz")"

# The .env values reached tutti.
settings=$(dc exec -T tutti tutti config)
for want in "max-calls = 20" 'timezone = "Europe/London"' "rtp-ports = \"$rtp_low-$rtp_high\"" \
  'media-address = "127.0.0.1"' 'data-dir = "/data"' 'control-password = "<set>"'; do
  grep -qxF "$want" <<<"$settings" || fail "tutti config in the container lacks '$want':
$settings"
done
# The media threads' nice value: -10 where the engine could grant the compose
# file's ulimits (the override turns them on where dockerd may raise limits),
# else the process's, with a note in the log; the other threads keep the
# process's.
pid=$(docker inspect -f '{{.State.Pid}}' "$cid")
threads=$(for t in /proc/"$pid"/task/*; do
  printf '%s %s\n' "$(cat "$t/comm")" "$(sed 's/.*) //' "$t/stat" | cut -d' ' -f17)"
done)
# The process's own nice value is dockerd's here (started under nice -n 19).
base=$(awk '$1 == "tutti" {print $2}' <<<"$threads")
media_nice=$base
[ -n "$raise_limits" ] && media_nice=-10
grep -qx "tutti-media $media_nice" <<<"$threads" || fail "no media thread at nice $media_nice:
$threads"
if grep -v '^tutti-media ' <<<"$threads" | grep -vq " $base\$"; then
  fail "threads other than the media ones changed their nice value:
$threads"
fi
if [ -z "$raise_limits" ]; then
  dc logs --no-color tutti | grep -qF "RLIMIT_NICE" || fail "no note on the media threads' priority in the log"
fi
say "media threads at nice $media_nice: $(grep -c "^tutti-media $media_nice\$" <<<"$threads")"
# The first start's secrets are in the log: the default customer's UID.
uid=$(dc exec -T tutti tutti customer list | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["uid"])')
logs=$(dc logs --no-color tutti)
grep -qF "$uid" <<<"$logs" || fail "the default customer's UID $uid is not in the container's log"

# control COMMAND...: one 4011 session, LOGIN first; prints the answers and fails
# on an ERROR answer or after 10 s.
control() {
  python3 - "$control_port" "$password" "$@" <<'PY'
import socket, sys
port, password, commands = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
for cmd in [f"LOGIN,{password}"] + commands:
    s.sendall(cmd.encode() + b"\r\n")
    name = cmd.split(",", 1)[0].upper()
    while True:
        line = f.readline().decode(errors="replace").rstrip("\r\n")
        if not line:
            sys.exit(f"4011: connection closed after {cmd}")
        print(line)
        if line.startswith(f"{name},ERROR"):
            sys.exit(f"4011: {line}")
        if line == f"{name},OK" or line.startswith(f"{name},OK,"):
            break
PY
}

# 6. A conference and a call into it.
control "NEWCONF,$conference,\"Deploy test\",CI,10,,,," >/dev/null || fail "NEWCONF over 4011"
say "calling conference $conference with SIPp"
(cd "$tmp" && timeout 60 sipp -sf "$repo/scripts/sipp/uac_call.xml" -s "$conference" -m 1 \
  -i 127.0.0.1 -p "$sipp_port" -mi 127.0.0.1 -mp "$sipp_media" -nostdin -timeout 30s -timeout_error \
  -trace_err -error_file sipp.errors.log "127.0.0.1:$sip_port" >sipp.out 2>&1) ||
  fail "SIPp call to $conference: $(tail -20 "$tmp/sipp.out"; cat "$tmp"/sipp.errors.log 2>/dev/null | tail -20)"

# 7. Restart: the conference and the database are still in the volume.
started=$(docker inspect -f '{{.State.StartedAt}}' "$cid")
say "docker-compose restart"
dc restart >/dev/null 2>&1 || fail "docker-compose restart"
[ "$(docker inspect -f '{{.State.StartedAt}}' "$cid")" != "$started" ] || fail "the container did not restart"
wait_for 30 "GET /healthz after the restart" curl -fsS --max-time 2 "http://127.0.0.1:$http_port/healthz"
wait_for 60 "healthy after the restart" health
conferences=$(control LISTCONF) || fail "LISTCONF over 4011"
grep -q "^LISTCONF,[^,]*,$conference," <<<"$conferences" ||
  fail "conference $conference is gone after the restart: $conferences"
volume=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}' "$cid")
[ -n "$volume" ] || fail "no volume at /data"
[ -s "$(docker volume inspect -f '{{.Mountpoint}}' "$volume")/tutti.db" ] || fail "no tutti.db in volume $volume"
say "after the restart: conference $conference listed, tutti.db in volume $volume"
