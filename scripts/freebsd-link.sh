#!/bin/sh
# Builds and links the FreeBSD kleened and klee binaries on Linux with zig as the cross linker, so
# that a symbol the FreeBSD libc lacks fails here instead of on a FreeBSD host. The binaries cannot
# run here; readelf shows what was made.
#
# zig (PyPI package `ziglang`) goes into .cache/zig. zig ships FreeBSD 14 libc stubs, but not the
# libraries Rust's std names and does not use (kvm, memstat, procstat, devstat), nor libgcc_s, whose
# unwinder zig provides as libunwind; the linker wrapper below adjusts the link line for that.
#
# Usage: scripts/freebsd-link.sh [cargo profile, default dev]
# Exit status: 0 linked, 1 the build or link failed, 3 the toolchain could not be installed.
set -eu
cd "$(dirname "$0")/.."

profile="${1:-dev}"
target=x86_64-unknown-freebsd
zig_version=0.17.1
venv="$PWD/.cache/zig"
bin="$venv/wrappers"

if ! "$venv/bin/python" -m ziglang version 2>/dev/null | grep -qx "$zig_version"; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" || ! "$venv/bin/pip" install --quiet "ziglang==$zig_version"; then
    echo "freebsd-link: could not install ziglang==$zig_version from PyPI" >&2
    exit 3
  fi
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "freebsd-link: the rustup target $target is not installed (rustup target add $target)" >&2
  exit 3
fi

mkdir -p "$bin"
# The linker rustc calls: zig cc for FreeBSD 14, with the link line adjusted as described above.
cat >"$bin/ld-$target" <<EOF
#!/bin/sh
for arg do
  shift
  case "\$arg" in
    -lkvm|-lmemstat|-lprocstat|-ldevstat) ;;
    -lgcc_s) set -- "\$@" -lunwind ;;
    *) set -- "\$@" "\$arg" ;;
  esac
done
exec "$venv/bin/python" -m ziglang cc -target x86_64-freebsd "\$@"
EOF
# The C compiler build scripts call (the cc crate): zig cc, without the Rust target triple it adds.
cat >"$bin/cc-$target" <<EOF
#!/bin/sh
for arg do
  shift
  case "\$arg" in
    --target=*) ;;
    *) set -- "\$@" "\$arg" ;;
  esac
done
exec "$venv/bin/python" -m ziglang cc -target x86_64-freebsd "\$@"
EOF
cat >"$bin/ar-$target" <<EOF
#!/bin/sh
exec "$venv/bin/python" -m ziglang ar "\$@"
EOF
chmod 0755 "$bin/ld-$target" "$bin/cc-$target" "$bin/ar-$target"

CARGO_TARGET_X86_64_UNKNOWN_FREEBSD_LINKER="$bin/ld-$target"
CC_x86_64_unknown_freebsd="$bin/cc-$target"
AR_x86_64_unknown_freebsd="$bin/ar-$target"
export CARGO_TARGET_X86_64_UNKNOWN_FREEBSD_LINKER CC_x86_64_unknown_freebsd AR_x86_64_unknown_freebsd

cargo build --locked --profile "$profile" --target "$target" -p kleened -p klee --bins

case "$profile" in
  dev) dir=debug ;;
  *) dir="$profile" ;;
esac
status=0
for name in kleened klee; do
  binary="target/$target/$dir/$name"
  machine=$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')
  interpreter=$(readelf -l "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
  owner=$(readelf -n "$binary" | awk '/^ *FreeBSD /{print "FreeBSD"; exit}')
  needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  echo "$binary: $machine, ${owner:-no FreeBSD} ABI note, interpreter $interpreter; needs $needed"
  if [ "$owner" != FreeBSD ] || [ "$interpreter" != /libexec/ld-elf.so.1 ]; then
    echo "freebsd-link: $binary is not a FreeBSD executable" >&2
    status=1
  fi
done
exit "$status"
