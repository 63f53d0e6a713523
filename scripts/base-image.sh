#!/bin/sh
# base-image.sh — build a small root filesystem for Linux hosts and pack it as a tar archive that
# `klee image create fetch file:///path/to/archive.tar` accepts; on FreeBSD, prepare the userland
# the end-to-end tests clone their base images from.
#
# Usage:
#   scripts/base-image.sh busybox OUT.tar           BusyBox from Debian's busybox-static (about 2 MB)
#   scripts/base-image.sh debian OUT.tar [SUITE]    a Debian minbase made by debootstrap (about 200 MB;
#                                                   SUITE defaults to bookworm; needs the Debian mirror)
#   scripts/base-image.sh freebsd-dataset DATASET [URL]
#                                                   FreeBSD: base.txz of the host's release (or URL)
#                                                   extracted into the ZFS dataset DATASET, once
#   scripts/base-image.sh freebsd-mini OUT.tar [DATASET]
#                                                   FreeBSD: bin, dev, etc, lib, libexec, root, tmp and
#                                                   usr/bin/env of DATASET (about 20 MB; default
#                                                   DATASET: $KLEENE_TEST_POOL/basejail)
#
# Run as root (the archive's files are owned by root, and debootstrap needs it). Packages that are
# missing (busybox-static, debootstrap) are installed with apt-get.
set -eu

die() {
    printf 'base-image: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,19p' "$0" >&2
    exit 2
}

log() {
    printf 'base-image: %s\n' "$*" >&2
}

need_package() {
    # $1 = a file the package provides, $2 = the package
    [ -e "$1" ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "$2 is missing and apt-get is not available"
    printf 'base-image: installing %s\n' "$2" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

busybox_rootfs() {
    root=$1
    need_package /bin/busybox busybox-static
    file -L /bin/busybox 2>/dev/null | grep -q 'dynamically linked' &&
        die "/bin/busybox is dynamically linked (Debian's busybox package); install busybox-static"
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" "$root/root" \
        "$root/dev" "$root/proc" "$root/sys" "$root/run" "$root/var/tmp" "$root/tmp"
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 700 "$root/root"
    cp /bin/busybox "$root/bin/busybox"
    # One link per applet, where BusyBox says the applet lives (bin/sh, usr/bin/awk, ...).
    /bin/busybox --list-full | while read -r applet; do
        [ "$applet" = bin/busybox ] && continue
        mkdir -p "$root/$(dirname "$applet")"
        ln -sf /bin/busybox "$root/$applet"
    done
    cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
    cat >"$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
nogroup:x:65534:
GROUP
    printf 'base\n' >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"
}

debian_rootfs() {
    root=$1
    suite=$2
    need_package /usr/sbin/debootstrap debootstrap
    debootstrap --variant=minbase "$suite" "$root" >&2
    rm -rf "$root/var/cache/apt/archives/"*.deb
}

# The release whose base.txz matches this host's userland: 14.4-RELEASE for 14.4-RELEASE-p2.
freebsd_release() {
    version=$(freebsd-version -u)
    case "$version" in
        *-RELEASE*) printf '%s-RELEASE\n' "${version%%-RELEASE*}" ;;
        *) die "cannot tell the release of '$version'; pass the URL of a base.txz" ;;
    esac
}

freebsd_dataset() {
    dataset=$1
    url=$2
    [ "$(uname -s)" = FreeBSD ] || die "freebsd-dataset runs on FreeBSD"
    if [ -z "$url" ]; then
        url="https://download.freebsd.org/releases/$(uname -m)/$(freebsd_release)/base.txz"
    fi
    # The URL is recorded on the dataset (a user property) only once the extraction finished, so a
    # dataset with it is complete and kept, and one without it (an interrupted run) is made again.
    if [ "$(zfs get -H -o value kleene:base "$dataset" 2>/dev/null || true)" = "$url" ]; then
        log "$dataset already holds $url"
        return 0
    fi
    if zfs list -H -o name "$dataset" >/dev/null 2>&1; then
        log "making $dataset again (incomplete, or from another base.txz)"
        zfs destroy -r "$dataset"
    fi
    zfs create -p "$dataset"
    mountpoint=$(zfs get -H -o value mountpoint "$dataset")
    log "downloading $url"
    fetch -o "$work/base.txz" "$url"
    log "extracting into $mountpoint"
    tar -C "$mountpoint" -xpf "$work/base.txz"
    zfs set "kleene:base=$url" "$dataset"
    log "$dataset holds $url ($(zfs get -H -o value used "$dataset"))"
}

# Enough of the userland to run /bin/sh (bin, lib, and libexec with the run-time linker), the
# passwd and group files in etc, and /usr/bin/env, which the jail runtime starts every command with.
freebsd_mini() {
    out=$1
    dataset=$2
    mountpoint=$(zfs get -H -o value mountpoint "$dataset" 2>/dev/null) ||
        die "no dataset $dataset: make it with 'base-image.sh freebsd-dataset $dataset'"
    [ -x "$mountpoint/bin/sh" ] || die "$dataset ($mountpoint) holds no FreeBSD userland"
    # dev: jail(8) mounts the devfs on the image's own /dev directory, which must exist.
    tar -C "$mountpoint" -cf "$out.partial" bin dev etc lib libexec root tmp usr/bin/env
    mv "$out.partial" "$out"
    log "wrote $out ($(du -h "$out" | cut -f1)) from $dataset"
}

[ $# -ge 2 ] || usage
kind=$1
[ "$(id -u)" = 0 ] || die "run as root"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
if [ "$kind" = freebsd-dataset ]; then
    freebsd_dataset "$2" "${3:-}"
    exit 0
fi
out=$2
case "$out" in
    /*) ;;
    *) out="$(pwd)/$out" ;;
esac
case "$kind" in
    busybox) busybox_rootfs "$work/root" ;;
    debian) debian_rootfs "$work/root" "${3:-bookworm}" ;;
    freebsd-mini)
        freebsd_mini "$out" "${3:-${KLEENE_TEST_POOL:-kleene-test}/basejail}"
        exit 0
        ;;
    *) usage ;;
esac
tar --numeric-owner -C "$work/root" -cf "$out.partial" .
mv "$out.partial" "$out"
printf 'base-image: wrote %s (%s)\n' "$out" "$(du -h "$out" | cut -f1)" >&2
