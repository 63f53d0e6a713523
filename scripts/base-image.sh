#!/bin/sh
# base-image.sh — build a small root filesystem for Linux hosts and pack it as a tar archive that
# `klee image create fetch file:///path/to/archive.tar` accepts.
#
# Usage:
#   scripts/base-image.sh busybox OUT.tar           BusyBox from Debian's busybox-static (about 2 MB)
#   scripts/base-image.sh debian OUT.tar [SUITE]    a Debian minbase made by debootstrap (about 200 MB;
#                                                   SUITE defaults to bookworm; needs the Debian mirror)
#
# Run as root (the archive's files are owned by root, and debootstrap needs it). Packages that are
# missing (busybox-static, debootstrap) are installed with apt-get.
set -eu

die() {
    printf 'base-image: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,11p' "$0" >&2
    exit 2
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

[ $# -ge 2 ] || usage
kind=$1
out=$2
[ "$(id -u)" = 0 ] || die "run as root"
case "$out" in
    /*) ;;
    *) out="$(pwd)/$out" ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
case "$kind" in
    busybox) busybox_rootfs "$work/root" ;;
    debian) debian_rootfs "$work/root" "${3:-bookworm}" ;;
    *) usage ;;
esac
tar --numeric-owner -C "$work/root" -cf "$out.partial" .
mv "$out.partial" "$out"
printf 'base-image: wrote %s (%s)\n' "$out" "$(du -h "$out" | cut -f1)" >&2
