#!/usr/bin/env bash
# Schema fuzzing of kleened's REST API: schemathesis (PyPI) generates requests from
# api/openapi.json, valid and invalid, and sends them to a live daemon; every answer must be
# something other than a 5xx, match the status and schema the document gives for it, and carry
# the content type it says. Websocket endpoints (/exec/start, /images/create, /images/build) are left
# out, and so is following a container's log.
#
# The daemon runs as in the end-to-end tests, on a dataset of its own under the test pool, but
# in a network namespace of its own too, so the networks the fuzzer creates (bridges, nftables,
# forwarding) never touch the host's network; schemathesis reaches it there on 127.0.0.1. A base
# image, a container and a network are made first, so lookups, removals and connects meet real
# objects. Everything goes at the end, even on failure: daemon, namespace, dataset, directory.
# Run as root (scripts/test runs it; docs/fuzzing.md has the figures of the last run).
#
# Environment:
#   KLEENE_TEST_POOL          the zfs test pool (default kleene-test; brought up when missing)
#   KLEENE_FUZZ_EXAMPLES      examples per operation in the fuzzing phase (default 50)
#   KLEENE_FUZZ_SEED          hypothesis seed (default: random, printed)
#   KLEENE_FUZZ_REPORT        keep schemathesis's NDJSON event reports at this path + .1 / .2
#   KLEENE_TEST_BASE_ARCHIVE  the base archive of the seeded image (default .cache/base-busybox.tar)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
pool="${KLEENE_TEST_POOL:-kleene-test}"
examples="${KLEENE_FUZZ_EXAMPLES:-50}"
seed="${KLEENE_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
archive="${KLEENE_TEST_BASE_ARCHIVE:-$PWD/.cache/base-busybox.tar}"
port=8085

say() { printf 'fuzz: %s\n' "$*" >&2; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] || die "this script runs the daemon in a Linux network namespace; on FreeBSD use a vnet jail (not written yet)"
[ "$(id -u)" = 0 ] || die "run as root: kleened needs root, a zfs pool and network namespaces"
for tool in ip nsenter zfs python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

venv=.cache/schemathesis
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

if ! zpool list -H -o name "$pool" >/dev/null 2>&1; then
  scripts/zfs-pool.sh up
fi
if [ ! -s "$archive" ]; then
  mkdir -p .cache
  scripts/base-image.sh busybox "$archive"
fi
cargo build --quiet --locked -p kleened -p klee --bins
kleened="$PWD/target/debug/kleened"
klee="$PWD/target/debug/klee"

id=$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')
ns="kt-fuzz$id"
dataset="$pool/kleene-e2e-fuzz-$id"
dir=$(mktemp -d /tmp/kleene-fuzz-XXXXXX)
daemon_pid=""

cleanup() {
  status=$?
  set +e
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"
    for _ in $(seq 100); do
      kill -0 "$daemon_pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$daemon_pid" 2>/dev/null; then
      say "kleened did not stop within 20 s of SIGTERM; killing it"
      kill -KILL "$daemon_pid"
      status=1
    fi
    wait "$daemon_pid" 2>/dev/null
  fi
  # zfs-fuse answers "dataset is busy" for a moment after clones go: retry briefly.
  for _ in $(seq 20); do
    zfs list -H -o name "$dataset" >/dev/null 2>&1 || break
    zfs destroy -r -R -f "$dataset" 2>/dev/null || sleep 0.25
  done
  if zfs list -H -o name "$dataset" >/dev/null 2>&1; then
    zfs destroy -r -R -f "$dataset"
    say "could not destroy $dataset"
    status=1
  fi
  if ip netns list | grep -q "^$ns\b"; then
    ip netns delete "$ns" || { say "could not delete the namespace $ns"; status=1; }
  fi
  for cgroup in /sys/fs/cgroup/kleene-e2e-fuzz-"$id" /sys/fs/cgroup/*/kleene-e2e-fuzz-"$id"; do
    [ -d "$cgroup" ] && rmdir "$cgroup" 2>/dev/null
  done
  if [ "$status" != 0 ] && [ -f "$dir/kleened.log" ]; then
    say "the daemon's log ends with:"
    tail -n 40 "$dir/kleened.log" >&2
  fi
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "namespace $ns, dataset $dataset, seed $seed, $examples examples per operation"
ip netns add "$ns"
ip -n "$ns" link set lo up
zfs create "$dataset"

cat >"$dir/config.yaml" <<EOF
kleene_root: $dataset
cgroup_parent: kleene-e2e-fuzz-$id
api_listening_sockets:
  - address: http://$dir/kleened.sock
  - address: http://127.0.0.1:$port
enable_logging: true
log_file: $dir/kleened.log
log_level: info
pidfile: $dir/kleened.pid
container_log_dir: $dir/container-logs
EOF

nsenter --net="/run/netns/$ns" "$kleened" --config "$dir/config.yaml" >"$dir/stderr.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 200); do
  grep -q "kleened is ready" "$dir/kleened.log" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || die "kleened exited during start-up: $(cat "$dir/stderr.log")"
  sleep 0.1
done
grep -q "kleened is ready" "$dir/kleened.log" || die "kleened did not get ready in 20 s"

# Objects for the requests to meet: a base image, a network, and a container on it, made afresh
# for each pass (`seed N`, N the pass), since the passes remove and rename them. Half of the
# identifiers in paths and bodies are drawn from these objects' IDs, ID prefixes and names (the
# rest are generated), and half of the network drivers from those Linux has (a missing one means
# ipnet, which Linux refuses), so requests reach past the lookups and checks.
host="http://$dir/kleened.sock"
quote() { printf '"%s", ' "$@" | sed 's/, $//'; }
seed() {
  image=$("$klee" --host "$host" image create fetch "file://$archive" -t "base$1" --no-dns \
    --no-localtime | sed -n 's/.*image created: //p')
  network=$("$klee" --host "$host" network create -t bridge --subnet "10.77.$1.0/24" "fuzznet$1")
  # Persistent, so the prunes leave it (and so its image and network) for the other requests.
  container=$("$klee" --host "$host" create --persist --name "web$1" -n "fuzznet$1" "base$1")
  if [ -z "$image" ] || [ -z "$network" ] || [ -z "$container" ]; then
    die "could not make the objects to fuzz against"
  fi
  cat >"$dir/schemathesis.toml" <<EOF
[dictionaries.containers]
values = [$(quote "$container" "$(printf %.3s "$container")" "web$1")]
[dictionaries.images]
values = [$(quote "$image" "$(printf %.3s "$image")" "base$1" "base$1:latest")]
[dictionaries.networks]
values = [$(quote "$network" "$(printf %.3s "$network")" "fuzznet$1")]
[dictionaries.drivers]
values = ["host", "vnet", "disabled"]

[parameters]
"path.container_id" = { dictionary = "containers", probability = 0.5 }
"body.container_id" = { dictionary = "containers", probability = 0.5 }
"body.container" = { dictionary = "containers", probability = 0.5 }
"path.image_id" = { dictionary = "images", probability = 0.5 }
"body.image" = { dictionary = "images", probability = 0.5 }
"path.network_id" = { dictionary = "networks", probability = 0.5 }
"body.network" = { dictionary = "networks", probability = 0.5 }
"body.network_driver" = { dictionary = "drivers", probability = 0.5 }
# A followed log stream ends only when its container is removed.
"query.follow" = false
EOF
}

# schemathesis, inside the daemon's namespace, with the checks every pass makes; extra arguments
# are passed on. It runs in the temporary directory, where it leaves its cache (.schemathesis/).
schema="$PWD/api/openapi.json"
schemathesis="$PWD/$venv/bin/schemathesis"
fuzz() {
  (cd "$dir" && timeout 900 nsenter --net="/run/netns/$ns" \
    "$schemathesis" --config-file "$dir/schemathesis.toml" \
    run "$schema" \
    --url "http://127.0.0.1:$port" \
    --exclude-path /exec/start --exclude-path /images/create --exclude-path /images/build \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$examples" \
    --seed "$seed" \
    --request-timeout 10 \
    --workers 1 \
    --generation-database none \
    --no-color \
    "$@")
}

fuzz_status=0
# First every operation that leaves the objects in place (removals and prunes would take them
# away early), then all of them.
seed 1
say "pass 1 of 2: operations that remove nothing, against http://127.0.0.1:$port inside $ns"
fuzz --exclude-method DELETE --exclude-path-regex '/prune$' --phases examples,coverage,fuzzing \
  --report ndjson --report-ndjson-path "$dir/report.1" || fuzz_status=$?
seed 2
say "pass 2 of 2: every operation"
fuzz --report ndjson --report-ndjson-path "$dir/report.2" || fuzz_status=$?
if [ -n "${KLEENE_FUZZ_REPORT:-}" ]; then
  cp "$dir/report.1" "$KLEENE_FUZZ_REPORT.1"
  cp "$dir/report.2" "$KLEENE_FUZZ_REPORT.2"
fi

# The figures: requests sent and the statuses they got, over both passes.
python3 - "$dir/report.1" "$dir/report.2" <<'EOF'
import collections, json, sys
statuses, operations = collections.Counter(), set()
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8"):
        event = json.loads(line).get("ScenarioFinished")
        if not event:
            continue
        recorder = event["recorder"]
        for interaction in recorder.get("interactions", {}).values():
            response = interaction.get("response") or {}
            statuses[response.get("status_code", "no answer")] += 1
            operations.add(recorder["label"])
total = sum(statuses.values())
by_status = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items(), key=str))
server_errors = sum(count for status, count in statuses.items() if isinstance(status, int) and status >= 500)
print(f"fuzz: {total} requests ({by_status}); 5xx: {server_errors}", file=sys.stderr)
EOF

# The daemon must have lived through it all and still answer.
kill -0 "$daemon_pid" 2>/dev/null || die "kleened died during the run"
curl -fsS --unix-socket "$dir/kleened.sock" http://localhost/containers/list?all=true >/dev/null \
  || die "kleened no longer answers"
if grep -q "panicked" "$dir/kleened.log" "$dir/stderr.log"; then
  grep -h -A3 "panicked" "$dir/kleened.log" "$dir/stderr.log" >&2
  die "kleened panicked during the run"
fi
[ "$fuzz_status" = 0 ] || die "schemathesis found failures (seed $seed)"
say "no failures (seed $seed)"
