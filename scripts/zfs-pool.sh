#!/bin/sh
# zfs-pool.sh — bring a file-backed ZFS test pool up or down on a Debian or FreeBSD test host.
#
# The zfs crate's host tests (zfs/tests/pool.rs) and the end-to-end tests need a real pool. Debian
# test machines have no kernel ZFS, so there this uses Debian's zfs-fuse (pool version 23), which
# runs the same zfs(8)/zpool(8) command lines in user space. On FreeBSD (and on Linux with OpenZFS)
# the kernel's ZFS is used: the zfs module is loaded if needed and no daemon is involved; the
# file-backed pool is made the same way. Run as root.
#
# Usage:
#   scripts/zfs-pool.sh up     [--name NAME] [--size SIZE] [--dir DIR] [--mountpoint PATH]
#   scripts/zfs-pool.sh down   [--name NAME] [--dir DIR] [--stop-daemon]
#   scripts/zfs-pool.sh status [--name NAME]
#   scripts/zfs-pool.sh check  [--name NAME] [--dir DIR]
#
# Defaults: NAME=$KLEENE_TEST_POOL or kleene-test, SIZE=$KLEENE_TEST_POOL_SIZE or 4G,
# DIR=/var/lib/kleene-test, mountpoint /NAME. The backing file is DIR/NAME.img (sparse).
#
# Every step is idempotent: `up` on a pool that is already up only checks it, and `down` on a
# pool that is already gone only cleans what is left.
#
# `up` ends with `check`: a probe dataset is created, must be mounted and writable, and is
# destroyed. A pool that fails the probe is repaired in steps (mount every dataset; restart
# zfs-fuse, dropping its stale FUSE mounts; a pool holding nothing but its root is made
# anew), each followed by the probe; what failed is printed with the host's state (disk space,
# pool status, mounts, the daemon's limits) before the script gives up. Starting zfs-fuse first
# unmounts the FUSE mounts a previous daemon left (a session's end kills it, its mounts stay and
# answer "Transport endpoint is not connected"), then mounts every dataset of the pools it imports.

set -eu

POOL_NAME="${KLEENE_TEST_POOL:-kleene-test}"
POOL_SIZE="${KLEENE_TEST_POOL_SIZE:-4G}"
POOL_DIR="/var/lib/kleene-test"
POOL_MOUNTPOINT=""
STOP_DAEMON=0
PIDFILE="/run/zfs-fuse.pid"

log() {
    printf 'zfs-pool: %s\n' "$*" >&2
}

die() {
    printf 'zfs-pool: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat >&2 <<'EOF'
usage: zfs-pool.sh up     [--name NAME] [--size SIZE] [--dir DIR] [--mountpoint PATH]
       zfs-pool.sh down   [--name NAME] [--dir DIR] [--stop-daemon]
       zfs-pool.sh status [--name NAME]
       zfs-pool.sh check  [--name NAME] [--dir DIR]

env: KLEENE_TEST_POOL (default kleene-test), KLEENE_TEST_POOL_SIZE (default 4G)
EOF
    exit 2
}

is_freebsd() {
    [ "$(uname -s)" = FreeBSD ]
}

# True when a real kernel ZFS (OpenZFS) is present: then the zfs/zpool tools are used as they
# are and no zfs-fuse daemon is needed.
have_kernel_zfs() {
    [ -e /dev/zfs ]
}

# True when zpool answers, i.e. the ZFS backend (kernel or zfs-fuse) is usable.
zpool_answers() {
    command -v zpool >/dev/null 2>&1 && zpool list -H -o name >/dev/null 2>&1
}

daemon_pid() {
    if [ -f "$PIDFILE" ]; then
        pid=$(cat "$PIDFILE" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            printf '%s\n' "$pid"
            return 0
        fi
    fi
    # A daemon started by someone else (another pidfile, or by hand) counts as running too.
    pgrep -x zfs-fuse 2>/dev/null | head -n 1
}

install_zfs_fuse() {
    if is_freebsd; then
        # ZFS is part of FreeBSD; only its kernel module may still need loading.
        if ! kldstat -q -m zfs; then
            log "loading the zfs kernel module"
            kldload zfs || die "kldload zfs failed"
        fi
        return 0
    fi
    if have_kernel_zfs && command -v zpool >/dev/null 2>&1; then
        return 0
    fi
    if command -v zfs-fuse >/dev/null 2>&1 && command -v zpool >/dev/null 2>&1; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "zfs-fuse is missing and apt-get is not available"
    log "installing zfs-fuse"
    # The package's postinst may or may not start the daemon (containers usually forbid it via
    # policy-rc.d); start_daemon below copes with both.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends zfs-fuse
}

# wait_for_zpool TENTHS: wait up to TENTHS tenths of a second for zpool to answer.
wait_for_zpool() {
    tries=0
    until zpool_answers; do
        tries=$((tries + 1))
        [ "$tries" -le "$1" ] || return 1
        sleep 0.1
    done
}

# wait_for_exit PID TENTHS: wait up to TENTHS tenths of a second for PID to exit.
wait_for_exit() {
    tries=0
    while kill -0 "$1" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -le "$2" ] || return 1
        sleep 0.1
    done
}

start_daemon() {
    if have_kernel_zfs; then
        return 0
    fi
    pid=$(daemon_pid)
    if [ -n "$pid" ]; then
        # The daemon opens its control socket a moment after forking, so give a fresh one
        # time to answer. One that never answers is usually still shutting down (zfs-fuse
        # takes several seconds to exit after SIGTERM): let it finish, then start anew.
        if wait_for_zpool 50; then
            log "zfs-fuse already running (pid $pid)"
            return 0
        fi
        log "zfs-fuse (pid $pid) does not answer; waiting for it to exit"
        wait_for_exit "$pid" 300 || die "zfs-fuse (pid $pid) neither answers nor exits; stop it and retry"
    fi
    [ -c /dev/fuse ] || die "/dev/fuse is missing: zfs-fuse needs FUSE"
    drop_stale_mounts
    # zfs-fuse does not remove its pidfile on exit, and refuses to start (exit 1, no message)
    # while the file exists; no daemon runs at this point, so it is stale.
    rm -f "$PIDFILE"
    log "starting zfs-fuse"
    # zfs-fuse forks into the background by itself unless --no-daemon is given, so the
    # daemon outlives this script; the pidfile lets `down --stop-daemon` find it again.
    zfs-fuse --pidfile "$PIDFILE"
    wait_for_zpool 100 || die "zfs-fuse started but 'zpool list' does not answer after 10s"
    # It imports the pools it knew but mounts nothing (its init script runs this too).
    zfs mount -a || log "'zfs mount -a' failed; the check below tells whether $POOL_NAME works"
}

# drop_stale_mounts: the FUSE mounts of a zfs-fuse that is gone (killed, or ended with the
# session that started it) stay in the mount table, and every access to them fails with
# "Transport endpoint is not connected", so the next daemon cannot mount its datasets there.
# Called only while no zfs-fuse runs, when every such mount is stale.
drop_stale_mounts() {
    stale=$(awk '$0 ~ / - fuse\.zfs / || ($5 == "/zfs-kstat" && $0 ~ / - fuse /) {print $5}' \
        /proc/self/mountinfo | sort -r)
    [ -n "$stale" ] || return 0
    log "unmounting $(printf '%s\n' "$stale" | wc -l) stale FUSE mounts of a zfs-fuse that is gone"
    printf '%s\n' "$stale" | while read -r mp; do
        umount -l "$mp" 2>/dev/null || true
    done
}

pool_exists() {
    zpool list -H -o name "$POOL_NAME" >/dev/null 2>&1
}

cmd_up() {
    install_zfs_fuse
    start_daemon
    if pool_exists; then
        log "pool $POOL_NAME is already up"
    else
        create_or_import
    fi
    cmd_check
}

create_or_import() {
    img="$POOL_DIR/$POOL_NAME.img"
    mountpoint="${POOL_MOUNTPOINT:-/$POOL_NAME}"
    if [ -f "$img" ]; then
        # A previous run left the backing file (daemon restarted, host rebooted): import it
        # rather than wiping what may still be in use.
        log "importing pool $POOL_NAME from $POOL_DIR"
        if zpool import -d "$POOL_DIR" "$POOL_NAME"; then
            return 0
        fi
        die "backing file $img exists but 'zpool import -d $POOL_DIR $POOL_NAME' failed; run 'zfs-pool.sh down' to remove it"
    fi
    mkdir -p "$POOL_DIR"
    # Sparse: the pool only costs the disk space actually written.
    truncate -s "$POOL_SIZE" "$img"
    log "creating pool $POOL_NAME ($POOL_SIZE, $img, mounted at $mountpoint)"
    if ! zpool create -m "$mountpoint" "$POOL_NAME" "$img"; then
        rm -f "$img"
        die "zpool create $POOL_NAME failed"
    fi
}

# probe: create a dataset in the pool, check that it is mounted and takes a file, destroy it.
# Prints what failed; returns non-zero on the first failure.
probe() {
    if [ "$(zfs get -H -o value mounted "$POOL_NAME" 2>/dev/null || true)" != yes ]; then
        log "probe: the root dataset of $POOL_NAME is not mounted"
        return 1
    fi
    # Probes of a check that was killed midway.
    zfs list -H -o name -d 1 "$POOL_NAME" 2>/dev/null | grep "^$POOL_NAME/kleene-probe-" |
        while read -r stale; do zfs destroy "$stale" 2>/dev/null || true; done
    probe_ds="$POOL_NAME/kleene-probe-$$"
    if ! zfs create "$probe_ds"; then
        log "probe: 'zfs create $probe_ds' failed"
        zfs destroy "$probe_ds" 2>/dev/null || true
        return 1
    fi
    ok=1
    probe_mp=$(zfs get -H -o value mountpoint "$probe_ds" 2>/dev/null || true)
    if [ "$(zfs get -H -o value mounted "$probe_ds" 2>/dev/null || true)" != yes ]; then
        log "probe: $probe_ds is not mounted"
        ok=0
    elif ! printf 'probe\n' >"$probe_mp/probe" || [ "$(cat "$probe_mp/probe")" != probe ]; then
        log "probe: cannot write and read back a file in $probe_mp"
        ok=0
    fi
    rm -f "$probe_mp/probe" 2>/dev/null || true
    # zfs-fuse answers "busy" for a moment after a mount.
    tries=0
    until zfs destroy "$probe_ds" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 20 ]; then
            zfs destroy "$probe_ds" || true
            log "probe: could not destroy $probe_ds"
            return 1
        fi
        sleep 0.5
    done
    [ "$ok" = 1 ]
}

diagnose() {
    log "state of the host and of pool $POOL_NAME:"
    {
        echo "--- df -h / $POOL_DIR"
        df -h / "$POOL_DIR" 2>&1 || true
        echo "--- zpool status -v $POOL_NAME"
        zpool status -v "$POOL_NAME" 2>&1 || true
        echo "--- zfs list -r $POOL_NAME"
        zfs list -r -o name,used,avail,mounted,mountpoint "$POOL_NAME" 2>&1 || true
        echo "--- mounts of the pool"
        grep -F "$POOL_NAME" /proc/self/mountinfo 2>&1 || true
        mp=$(zfs get -H -o value mountpoint "$POOL_NAME" 2>/dev/null || true)
        if [ -n "$mp" ]; then
            echo "--- ls -ld $mp; mkdir in it"
            ls -ld "$mp" 2>&1 || true
            mkdir "$mp/kleene-mkdir-$$" 2>&1 && rmdir "$mp/kleene-mkdir-$$"
        fi
        pid=$(daemon_pid || true)
        if [ -n "$pid" ]; then
            echo "--- zfs-fuse pid $pid limits"
            cat "/proc/$pid/limits" 2>&1 || true
        fi
        echo "--- umask $(umask); this shell's limits"
        cat /proc/$$/limits 2>&1 || true
    } >&2
}

# restart_daemon: stop zfs-fuse and start it again (start_daemon drops the mounts it leaves).
restart_daemon() {
    pid=$(daemon_pid || true)
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait_for_exit "$pid" 300 || return 1
    fi
    start_daemon
}

cmd_check() {
    if probe; then
        log "pool $POOL_NAME works (its root is mounted; a probe dataset was created, mounted, written and destroyed)"
        return 0
    fi
    diagnose
    if is_freebsd || have_kernel_zfs; then
        die "pool $POOL_NAME does not work (see above)"
    fi
    log "repair 1: mount every dataset"
    zfs mount -a 2>&1 || true
    if probe; then log "pool $POOL_NAME works after repair 1"; return 0; fi
    log "repair 2: restart zfs-fuse"
    if restart_daemon; then
        pool_exists || zpool import -d "$POOL_DIR" "$POOL_NAME" || true
        if pool_exists && probe; then
            log "pool $POOL_NAME works after repair 2"
            return 0
        fi
    fi
    if pool_exists && [ "$(zfs list -H -o name -t all -r "$POOL_NAME" | wc -l)" -le 1 ]; then
        log "repair 3: $POOL_NAME holds nothing but its root; making it anew"
        POOL_MOUNTPOINT="${POOL_MOUNTPOINT:-$(zfs get -H -o value mountpoint "$POOL_NAME")}"
        cmd_down
        create_or_import
        if probe; then log "pool $POOL_NAME works after repair 3"; return 0; fi
    fi
    diagnose
    die "pool $POOL_NAME does not work and could not be repaired (see above)"
}

cmd_down() {
    img="$POOL_DIR/$POOL_NAME.img"
    if zpool_answers && pool_exists; then
        mountpoint=$(zfs get -H -o value mountpoint "$POOL_NAME" 2>/dev/null || true)
        log "destroying pool $POOL_NAME"
        # Right after an import or heavy use zfs-fuse answers "pool is busy" for a while.
        tries=0
        until zpool destroy -f "$POOL_NAME"; do
            tries=$((tries + 1))
            [ "$tries" -le 20 ] || die "could not destroy pool $POOL_NAME"
            sleep 0.5
        done
        # zpool leaves the (now empty) mount point directory behind.
        case "$mountpoint" in
        /?*) rmdir "$mountpoint" 2>/dev/null || true ;;
        esac
    else
        log "pool $POOL_NAME is not imported"
    fi
    if [ -f "$img" ]; then
        rm -f "$img"
        log "removed $img"
    fi
    rmdir "$POOL_DIR" 2>/dev/null || true
    if [ "$STOP_DAEMON" -eq 1 ] && ! have_kernel_zfs && ! is_freebsd; then
        pid=$(daemon_pid)
        if [ -n "$pid" ]; then
            log "stopping zfs-fuse (pid $pid)"
            kill "$pid"
            # zfs-fuse unmounts and syncs everything before exiting, which takes seconds.
            wait_for_exit "$pid" 300 || die "zfs-fuse (pid $pid) did not exit after 30s"
        fi
        rm -f "$PIDFILE"
    fi
}

cmd_status() {
    if ! command -v zpool >/dev/null 2>&1; then
        echo "down: zpool is not installed (run: scripts/zfs-pool.sh up)"
        return 1
    fi
    if ! zpool_answers; then
        if is_freebsd; then
            echo "down: zpool does not answer; is the zfs kernel module loaded? (run: scripts/zfs-pool.sh up)"
        else
            echo "down: zfs-fuse is not running (run: scripts/zfs-pool.sh up)"
        fi
        return 1
    fi
    if pool_exists; then
        echo "up: pool $POOL_NAME"
        zpool list "$POOL_NAME"
        return 0
    fi
    echo "down: pool $POOL_NAME does not exist (run: scripts/zfs-pool.sh up)"
    return 1
}

[ $# -ge 1 ] || usage
action=$1
shift
while [ $# -gt 0 ]; do
    case "$1" in
    --name)
        [ $# -ge 2 ] || usage
        POOL_NAME=$2
        shift 2
        ;;
    --size)
        [ $# -ge 2 ] || usage
        POOL_SIZE=$2
        shift 2
        ;;
    --dir)
        [ $# -ge 2 ] || usage
        POOL_DIR=$2
        shift 2
        ;;
    --mountpoint)
        [ $# -ge 2 ] || usage
        POOL_MOUNTPOINT=$2
        shift 2
        ;;
    --stop-daemon)
        STOP_DAEMON=1
        shift
        ;;
    -h | --help)
        usage
        ;;
    *)
        log "unknown argument: $1"
        usage
        ;;
    esac
done

case "$action" in
up | down | status | check) ;;
*) usage ;;
esac

if [ "$action" != status ] && [ "$(id -u)" -ne 0 ]; then
    die "must run as root"
fi

case "$action" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
check) cmd_check ;;
esac
