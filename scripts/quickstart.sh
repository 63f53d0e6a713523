#!/bin/sh
# quickstart.sh — the main job on a fresh Debian machine, as root: install what the host needs, make a
# file-backed ZFS pool (zfs-fuse), build kleened and klee, start kleened, create a BusyBox base
# image, and run a container whose output streams back through klee.
#
# Usage:
#   sudo scripts/quickstart.sh          set everything up (idempotent) and run the greeting container
#   sudo scripts/quickstart.sh stop     stop the daemon it started
#
# Environment: KLEENE_POOL (default kleene), KLEENE_QUICKSTART_DIR (default /var/lib/kleene-quickstart).
# The daemon listens on /var/run/kleened.sock, klee's default, so afterwards `klee` needs no --host:
#   target/release/klee run --rm base echo hi
set -eu

cd "$(dirname "$0")/.."
POOL="${KLEENE_POOL:-kleene}"
DIR="${KLEENE_QUICKSTART_DIR:-/var/lib/kleene-quickstart}"
ROOT="$POOL/root"
KLEENED="$PWD/target/release/kleened"
KLEE="$PWD/target/release/klee"

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'quickstart: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it creates a ZFS pool, namespaces and cgroups)"

if [ "${1:-}" = stop ]; then
    if [ -f "$DIR/kleened.pid" ]; then
        kill "$(cat "$DIR/kleened.pid")" && echo "kleened stopped"
    else
        echo "kleened is not running (no $DIR/kleened.pid)"
    fi
    exit 0
fi

say "host packages"
if ! command -v cargo >/dev/null 2>&1; then
    die "cargo is missing: install Rust 1.89 or newer (rustup) first"
fi
# gcc for crates that build C; nftables and iproute2 for networks (nft, ip) and util-linux (nsenter).
if ! command -v cc >/dev/null 2>&1 || ! command -v nft >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        gcc libc6-dev nftables iproute2 util-linux >/dev/null
fi

say "ZFS pool '$POOL' (zfs-fuse, file-backed)"
scripts/zfs-pool.sh up --name "$POOL"
zfs list -H -o name "$ROOT" >/dev/null 2>&1 || zfs create "$ROOT"

say "build kleened and klee (release)"
cargo build --release --locked --workspace --bins

mkdir -p "$DIR"
if ! "$KLEE" lsi >/dev/null 2>&1; then
    say "start kleened (log: $DIR/kleened.log)"
    cat >"$DIR/config.yaml" <<CONFIG
kleene_root: $ROOT
api_listening_sockets:
  - address: http:///var/run/kleened.sock
enable_logging: true
log_level: info
log_file: $DIR/kleened.log
pidfile: $DIR/kleened.pid
CONFIG
    nohup "$KLEENED" --config "$DIR/config.yaml" >"$DIR/kleened.stderr" 2>&1 &
    tries=0
    until "$KLEE" lsi >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || die "kleened did not start; see $DIR/kleened.stderr"
        sleep 0.1
    done
fi

if ! "$KLEE" isi base >/dev/null 2>&1; then
    say "base image 'base' from Debian's busybox-static"
    [ -s "$DIR/busybox.tar" ] || scripts/base-image.sh busybox "$DIR/busybox.tar"
    "$KLEE" image create fetch "file://$DIR/busybox.tar" -t base
fi

say "klee run --rm base echo \"hello from a container\""
"$KLEE" run --rm base echo "hello from a container"
printf '\nkleened runs on /var/run/kleened.sock; try: %s run -it --rm base sh\nstop it with: %s stop\n' "$KLEE" "$0"
