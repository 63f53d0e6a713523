//! mount_setattr(2) (Linux 5.12), which neither nix nor rustix wraps yet: the mount attributes of a
//! whole tree changed through a descriptor of it, before it is attached anywhere. The root's
//! set-up ([`super::rootfs`]) uses it so that a bind mount is read-only, `nosuid` or `nodev`, in
//! every mount it holds, from the moment it appears in the container's file system.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};

use nix::libc;
use rustix::mount::MountAttrFlags;

/// `struct mount_attr` of `<linux/mount.h>` (`MOUNT_ATTR_SIZE_VER0`, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Adds `attrs` to every mount of the tree `tree` names (a detached tree from `open_tree`, or the
/// root of a mount), leaving the attributes it has.
pub fn add(tree: impl AsFd, attrs: MountAttrFlags) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: u64::from(attrs.bits()),
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a static NUL-terminated empty string (AT_EMPTY_PATH: the descriptor
    // itself), `attr` lives across the call and its size is the one passed; the kernel only reads
    // both.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_fd().as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if result < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}
