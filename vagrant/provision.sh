#!/bin/sh
# provision.sh — turn a FreeBSD 14 machine (the VM of vagrant/Vagrantfile) into a host that runs
# kleened's end-to-end suite against the jail runtime, then run it.
#
# Usage, as root on the FreeBSD machine:
#   vagrant/provision.sh          provision (every step below), then run the suite (scripts/test)
#   vagrant/provision.sh suite    only run the suite again, in the environment provisioning made
#
# Steps, each safe to repeat: packages (pkg), the Rust toolchain (rustup, for root) and
# cargo-nextest, free disk space, kernel modules and sysctls, the file-backed test pool
# (scripts/zfs-pool.sh), the build, kleened and klee installed with the rc.d script and a
# configuration, `service kleened init`, the daemon started by rc.d, a base image made with
# `klee image create fetch-auto` and a container run from it (the smoke check), the daemon stopped
# again, the FreeBSD userland dataset the tests clone from, and the suite.
#
# Environment:
#   KLEENE_REPO         the repository on this machine (default /kleene, where the Vagrantfile
#                       syncs it)
#   KLEENE_TEST_POOL    the test pool (default kleene-test); the daemon's root is <pool>/kleene
#   KLEENE_SKIP_SUITE=1 provision only, do not run the suite (announced)
set -eu

REPO="${KLEENE_REPO:-/kleene}"
POOL="${KLEENE_TEST_POOL:-kleene-test}"
CONFIG=/usr/local/etc/kleened/config.yaml
SOCKET=/var/run/kleened.sock
# Sparse: the pool file only costs what is written (the base dataset and the fetch-auto image
# take about 2 GB; the tests' own datasets are small and removed).
POOL_SIZE=8G
# Free space the first build needs on /: the toolchain, the cargo registry and target/.
BUILD_SPACE_GB=8

step() { printf '\n==> %s\n' "$*"; }
die() {
    printf '\n!!! provision: %s\n' "$*" >&2
    exit 1
}

# Root's Rust toolchain, whatever HOME sudo or vagrant handed over.
toolchain_env() {
    HOME=/root
    CARGO_HOME=/root/.cargo
    RUSTUP_HOME=/root/.rustup
    PATH="$CARGO_HOME/bin:/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"
    export HOME CARGO_HOME RUSTUP_HOME PATH
}

# The ID of the image fetch-auto made (named FreeBSD-<release>), if there is one.
freebsd_image() {
    klee lsi | awk 'NR > 1 && $2 ~ /^FreeBSD-/ { print $1; exit }'
}

check_host() {
    [ "$(uname -s)" = FreeBSD ] || die "this provisions a FreeBSD host; this is $(uname -s)"
    [ "$(id -u)" = 0 ] || die "run as root"
    [ "$(uname -m)" = amd64 ] || die "only amd64 is provided for (rustup-init and cargo-nextest downloads)"
    [ -f "$REPO/Cargo.toml" ] || die "no repository at $REPO (KLEENE_REPO names another place)"
    case "$(freebsd-version -u)" in
        *-RELEASE*) ;;
        *) die "$(freebsd-version -u) is not a release: fetch-auto and the base dataset need a release's base.txz" ;;
    esac
}

install_packages() {
    step "packages: bash, git, python3, rsync, shellcheck, CA certificates"
    if ! pkg -N >/dev/null 2>&1; then
        ASSUME_ALWAYS_YES=yes pkg bootstrap -y
    fi
    pkg install -y bash git python3 rsync hs-ShellCheck ca_root_nss
    # scripts/test makes a venv for the Python client: the venv and ensurepip modules must be there.
    python3 -c 'import ensurepip, venv' ||
        die "python3 lacks the venv or ensurepip module, which scripts/test needs for the Python client"
}

# rustup rather than the `rust` package: it gives the same current stable toolchain CI uses on
# Linux (clippy runs with -D warnings, so its lints must match), with clippy and rustfmt, and the
# version the workspace needs (rust-version in Cargo.toml) regardless of the ports branch.
install_rust() {
    step "Rust toolchain (rustup, stable, for root)"
    if [ ! -x "$CARGO_HOME/bin/rustup" ]; then
        fetch -o /tmp/rustup-init https://static.rust-lang.org/rustup/dist/x86_64-unknown-freebsd/rustup-init
        chmod 0755 /tmp/rustup-init
        /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain none
        rm -f /tmp/rustup-init
    fi
    rustup toolchain install stable --profile minimal --component clippy --component rustfmt
    rustup default stable
    rustc --version
    step "cargo-nextest (the runner scripts/test prefers; it runs the pool tests one at a time)"
    if ! cargo nextest --version >/dev/null 2>&1; then
        fetch -o /tmp/nextest.tar.gz https://get.nexte.st/0.9/x86_64-unknown-freebsd.tar.gz
        tar -xzf /tmp/nextest.tar.gz -C "$CARGO_HOME/bin"
        rm -f /tmp/nextest.tar.gz
    fi
    cargo nextest --version
}

free_gb() {
    echo $(($(df -k / | awk 'NR == 2 { print $4 }') / 1048576))
}

check_disk() {
    step "free space on /"
    need=$BUILD_SPACE_GB
    [ -d "$REPO/target/debug" ] && need=3
    if [ "$(free_gb)" -lt "$need" ] && [ -x /etc/rc.d/growfs ]; then
        # The provider may have made the disk bigger than the box's file system (KLEENE_VAGRANT_DISK_GB
        # in the Vagrantfile): grow the root file system into it, without adding swap.
        echo "less than ${need} GB free: growing the root file system to the disk's size"
        sysrc growfs_swap_size=0
        service growfs onestart
    fi
    df -h /
    if [ "$(free_gb)" -lt "$need" ]; then
        die "only $(free_gb) GB free on /, the build and the tests need about ${need} GB: give the VM a bigger disk (vagrant/README.md says how)"
    fi
}

kernel_setup() {
    step "kernel modules (zfs, if_bridge, if_epair, pf, pflog) and sysctls"
    for module in zfs if_bridge if_epair pf pflog; do
        kldstat -q -m "$module" || kldload "$module"
    done
    for setting in net.link.bridge.pfil_bridge=1 net.inet.ip.forwarding=1; do
        sysctl "$setting"
        grep -qxF "$setting" /etc/sysctl.conf 2>/dev/null || echo "$setting" >>/etc/sysctl.conf
    done
}

make_pool() {
    step "ZFS test pool $POOL (file-backed, $POOL_SIZE sparse)"
    KLEENE_TEST_POOL_SIZE=$POOL_SIZE "$REPO/scripts/zfs-pool.sh" up
    zpool list "$POOL"
}

build() {
    step "build kleened and klee (cargo build --workspace --bins)"
    (cd "$REPO" && cargo build --workspace --bins --locked)
}

install_service() {
    step "install kleened, klee, the rc.d script and $CONFIG"
    install -m 0555 "$REPO/target/debug/kleened" "$REPO/target/debug/klee" /usr/local/bin/
    install -m 0555 "$REPO/freebsd/kleened.rc" /usr/local/etc/rc.d/kleened
    mkdir -p /usr/local/etc/kleened
    # The example configuration with this machine's root dataset; rewritten on every run.
    sed "s|^kleene_root: .*|kleene_root: $POOL/kleene|" "$REPO/example/kleened_config.yaml" >"$CONFIG.new"
    mv "$CONFIG.new" "$CONFIG"
    sysrc kleened_enable=YES
}

init_host() {
    step "service kleened dryinit (what init would change)"
    service kleened dryinit
    step "service kleened init"
    service kleened init
    zfs list -r "$POOL/kleene"
}

start_daemon() {
    step "start kleened with rc.d"
    if service kleened status >/dev/null 2>&1; then
        service kleened restart
    else
        service kleened start
    fi
    tries=0
    until [ -S "$SOCKET" ] && klee lsi >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -le 100 ] || die "kleened does not answer on $SOCKET after 20 s; see /var/log/kleened.log and /var/log/kleened.out"
        sleep 0.2
    done
    service kleened status
}

smoke_check() {
    step "smoke check: a FreeBSD base image by 'klee image create fetch-auto'"
    image=$(freebsd_image)
    if [ -n "$image" ]; then
        echo "fetch-auto made image $image before"
    else
        klee image create fetch-auto
        image=$(freebsd_image)
        [ -n "$image" ] || die "fetch-auto reported no error, but no FreeBSD-<release> image is listed"
    fi
    klee lsi
    step "smoke check: a container from image $image"
    out=$(klee run --rm "$image" /bin/sh -c 'echo hello from a jail; sysctl -n security.jail.jailed')
    printf '%s\n' "$out"
    [ "$out" = "hello from a jail
1" ] || die "the smoke container did not print what it should have"
    step "stop kleened (the suite starts daemons of its own)"
    service kleened stop
}

base_dataset() {
    step "FreeBSD userland the test containers are cloned from ($POOL/basejail)"
    "$REPO/scripts/base-image.sh" freebsd-dataset "$POOL/basejail"
}

run_suite() {
    step "the end-to-end suite against the jail runtime (scripts/test)"
    cd "$REPO"
    KLEENE_TEST_POOL=$POOL KLEENE_TEST_BASE_DATASET="$POOL/basejail" bash scripts/test
}

toolchain_env
check_host
case "${1:-all}" in
    suite)
        run_suite
        ;;
    all)
        install_packages
        install_rust
        check_disk
        kernel_setup
        make_pool
        build
        install_service
        init_host
        start_daemon
        smoke_check
        base_dataset
        if [ "${KLEENE_SKIP_SUITE:-}" = 1 ]; then
            printf '\n!!! SKIPPED: the end-to-end suite (KLEENE_SKIP_SUITE=1); run: vagrant/provision.sh suite\n' >&2
        else
            run_suite
        fi
        ;;
    *)
        sed -n '2,20p' "$0" >&2
        exit 2
        ;;
esac
