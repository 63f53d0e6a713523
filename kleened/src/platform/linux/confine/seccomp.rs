//! The system-call filter of a container's processes, with the effect of Docker's default profile.
//!
//! Two filters, compiled with `seccompiler` (pure Rust) and installed in this order:
//!
//! 1. **The allow-list.** The system calls ordinary programs use are allowed; `clone` and `unshare`
//!    only without namespace flags, `personality` only with the usual personas, `socket` for every
//!    family but `AF_VSOCK` (a channel to a hypervisor). Anything else answers `ENOSYS`, as a kernel
//!    without that call would: C libraries fall back from a new call they do not find (`clone3` to
//!    `clone`, `faccessat2` to `faccessat`), and no call unknown to this list can reach the kernel.
//! 2. **The deny-list.** Calls that change the host or escape the container (mounting, module
//!    loading, kexec, reboot, bpf, perf, keyrings, file handles, clock setting, swap, namespaces,
//!    `setns`, ...) answer `EPERM`, so a refused call says "not permitted" rather than "not
//!    implemented". The kernel runs every filter and, for answers of the same kind, keeps the most
//!    recently installed one: this list decides for the calls it names.
//!
//! A system call of another architecture (the 32-bit ABI on x86_64) kills the process.
//!
//! The filters are installed without `no_new_privs` (as Docker does by default, so setuid programs
//! such as `su` keep working inside), which the kernel allows only while the caller holds
//! `CAP_SYS_ADMIN`: [`install`] runs before the capabilities are reduced.
#![allow(unsafe_code)]

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// Namespace flags of clone(2) (CLONE_NEWTIME shares its bit with the exit signal there).
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// Namespace flags of unshare(2).
const UNSHARE_NAMESPACES: u64 = CLONE_NAMESPACES | libc::CLONE_NEWTIME as u64;

/// `AF_VSOCK`, refused by `socket`.
const AF_VSOCK: u64 = libc::AF_VSOCK as u64;

/// The personas `personality` may select: Linux, 32-bit Linux, the 2.6-uname one, and the query.
const PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Calls allowed without condition on every architecture.
const ALLOWED: &[libc::c_long] = &[
    // processes, threads, signals
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_kill,
    libc::SYS_tkill,
    libc::SYS_tgkill,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pidfd_getfd,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_set_tid_address,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_rseq,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_membarrier,
    libc::SYS_prctl,
    libc::SYS_seccomp,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_gettid,
    libc::SYS_getpgid,
    libc::SYS_setpgid,
    libc::SYS_getsid,
    libc::SYS_setsid,
    // credentials and limits
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getgroups,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_setgroups,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_getrlimit,
    libc::SYS_setrlimit,
    libc::SYS_prlimit64,
    libc::SYS_getrusage,
    libc::SYS_getpriority,
    libc::SYS_setpriority,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_setattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_setparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_yield,
    libc::SYS_getcpu,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_restrict_self,
    // memory
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_mincore,
    libc::SYS_msync,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    libc::SYS_memfd_create,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_remap_file_pages,
    // files and directories
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_lseek,
    libc::SYS_readahead,
    libc::SYS_sendfile,
    libc::SYS_splice,
    libc::SYS_tee,
    libc::SYS_vmsplice,
    libc::SYS_copy_file_range,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_ioctl,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_sync,
    libc::SYS_syncfs,
    libc::SYS_sync_file_range,
    libc::SYS_fallocate,
    libc::SYS_fadvise64,
    libc::SYS_ftruncate,
    libc::SYS_truncate,
    libc::SYS_fstatfs,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_chroot,
    libc::SYS_umask,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_readlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_unlinkat,
    libc::SYS_utimensat,
    libc::SYS_getxattr,
    libc::SYS_lgetxattr,
    libc::SYS_fgetxattr,
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_flistxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_fremovexattr,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_rm_watch,
    libc::SYS_pipe2,
    // waiting and events
    libc::SYS_ppoll,
    libc::SYS_pselect6,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_signalfd4,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_io_setup,
    libc::SYS_io_destroy,
    libc::SYS_io_submit,
    libc::SYS_io_cancel,
    libc::SYS_io_getevents,
    // time
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_nanosleep,
    libc::SYS_getitimer,
    libc::SYS_setitimer,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timer_getoverrun,
    libc::SYS_times,
    libc::SYS_adjtimex,
    // sockets
    libc::SYS_socketpair,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_shutdown,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_recvmmsg,
    // System V and POSIX IPC (the container has its own IPC namespace)
    libc::SYS_msgget,
    libc::SYS_msgsnd,
    libc::SYS_msgrcv,
    libc::SYS_msgctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_semctl,
    libc::SYS_shmget,
    libc::SYS_shmat,
    libc::SYS_shmdt,
    libc::SYS_shmctl,
    libc::SYS_mq_open,
    libc::SYS_mq_unlink,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_notify,
    libc::SYS_mq_getsetattr,
    // system information
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_getrandom,
];

/// Calls of the x86_64 ABI that newer architectures do without.
#[cfg(target_arch = "x86_64")]
const ALLOWED_X86_64: &[libc::c_long] = &[
    libc::SYS_arch_prctl,
    libc::SYS_modify_ldt,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_pause,
    libc::SYS_alarm,
    libc::SYS_time,
    libc::SYS_open,
    libc::SYS_creat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_lchown,
    libc::SYS_mkdir,
    libc::SYS_rmdir,
    libc::SYS_mknod,
    libc::SYS_link,
    libc::SYS_symlink,
    libc::SYS_readlink,
    libc::SYS_rename,
    libc::SYS_unlink,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_futimesat,
    libc::SYS_getdents,
    libc::SYS_getpgrp,
    libc::SYS_dup2,
    libc::SYS_pipe,
    libc::SYS_poll,
    libc::SYS_select,
    libc::SYS_epoll_create,
    libc::SYS_epoll_wait,
    libc::SYS_eventfd,
    libc::SYS_signalfd,
    libc::SYS_inotify_init,
];

#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_X86_64: &[libc::c_long] = &[];

/// Calls refused with `EPERM`: they reach beyond the container.
const DENIED: &[libc::c_long] = &[
    // file systems and the root
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_quotactl,
    libc::SYS_quotactl_fd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    // namespaces
    libc::SYS_setns,
    // the kernel
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_syslog,
    libc::SYS_userfaultfd,
    libc::SYS_lookup_dcookie,
    libc::SYS_fanotify_init,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_vhangup,
    // keyrings
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    // clocks and names shared with the host
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    // NUMA placement of other processes' memory
    libc::SYS_mbind,
    libc::SYS_set_mempolicy,
    libc::SYS_migrate_pages,
    libc::SYS_move_pages,
];

#[cfg(target_arch = "x86_64")]
const DENIED_X86_64: &[libc::c_long] = &[
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_uselib,
    libc::SYS_ustat,
    libc::SYS_sysfs,
    libc::SYS__sysctl,
    libc::SYS_nfsservctl,
];

#[cfg(not(target_arch = "x86_64"))]
const DENIED_X86_64: &[libc::c_long] = &[];

fn arch() -> Result<seccompiler::TargetArch, String> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| format!("no system-call filter for the {} architecture; start the container with -J linux.seccomp=unconfined", std::env::consts::ARCH))
}

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string())
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

/// The first argument has none of `flags`.
fn without(flags: u64) -> Result<Vec<SeccompRule>, String> {
    Ok(vec![rule(vec![condition(
        0,
        SeccompCmpOp::MaskedEq(flags),
        0,
    )?])?])
}

/// The first argument has at least one of `flags`: one rule per flag (rules are alternatives).
fn with_any(flags: u64) -> Result<Vec<SeccompRule>, String> {
    (0..64)
        .map(|bit| 1u64 << bit)
        .filter(|flag| flags & flag != 0)
        .map(|flag| rule(vec![condition(0, SeccompCmpOp::MaskedEq(flag), flag)?]))
        .collect()
}

/// The allow-list: every other call answers `ENOSYS`.
fn allow_list() -> Result<SeccompFilter, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(ALLOWED_X86_64)
        .map(|nr| (*nr, vec![]))
        .collect();
    rules.insert(libc::SYS_clone, without(CLONE_NAMESPACES)?);
    rules.insert(libc::SYS_unshare, without(UNSHARE_NAMESPACES)?);
    rules.insert(
        libc::SYS_socket,
        vec![rule(vec![condition(0, SeccompCmpOp::Ne, AF_VSOCK)?])?],
    );
    rules.insert(
        libc::SYS_personality,
        PERSONAS
            .iter()
            .map(|persona| rule(vec![condition(0, SeccompCmpOp::Eq, *persona)?]))
            .collect::<Result<_, _>>()?,
    );
    SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::ENOSYS as u32),
        SeccompAction::Allow,
        arch()?,
    )
    .map_err(|e| e.to_string())
}

/// The deny-list: these answer `EPERM`, everything else is left to the allow-list.
fn deny_list() -> Result<SeccompFilter, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED
        .iter()
        .chain(DENIED_X86_64)
        .map(|nr| (*nr, vec![]))
        .collect();
    rules.insert(libc::SYS_clone, with_any(CLONE_NAMESPACES)?);
    rules.insert(libc::SYS_unshare, with_any(UNSHARE_NAMESPACES)?);
    rules.insert(
        libc::SYS_socket,
        vec![rule(vec![condition(0, SeccompCmpOp::Eq, AF_VSOCK)?])?],
    );
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(|e| e.to_string())
}

/// The container's filters as BPF programs, in the order they are to be installed.
pub fn programs() -> Result<Vec<BpfProgram>, String> {
    [allow_list()?, deny_list()?]
        .into_iter()
        .map(|filter| BpfProgram::try_from(filter).map_err(|e| e.to_string()))
        .collect()
}

/// Installs a filter on the calling thread (and the processes it will start), without setting
/// `no_new_privs`: the caller must hold `CAP_SYS_ADMIN`.
pub fn install(program: &BpfProgram) -> Result<(), String> {
    let length = u16::try_from(program.len())
        .map_err(|_| format!("the filter has {} instructions", program.len()))?;
    let fprog = libc::sock_fprog {
        len: length,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: seccomp(2) copies the program from `fprog`, which points into `program`, alive for
    // the whole call; the kernel does not keep the pointer.
    let result = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if result != 0 {
        return Err(format!(
            "cannot install the system-call filter: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_and_fit_the_kernel_limit() {
        let programs = programs().unwrap();
        assert_eq!(programs.len(), 2);
        for program in &programs {
            // BPF_MAXINSNS for seccomp filters.
            assert!(program.len() < 4096, "{} instructions", program.len());
        }
    }

    #[test]
    fn no_call_is_both_allowed_and_denied() {
        for nr in DENIED.iter().chain(DENIED_X86_64) {
            assert!(
                !ALLOWED.contains(nr) && !ALLOWED_X86_64.contains(nr),
                "system call {nr} is in both lists"
            );
        }
        let mut all: Vec<_> = ALLOWED.iter().chain(ALLOWED_X86_64).collect();
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "a call is listed twice");
    }

    #[test]
    fn namespace_flags_are_tested_one_by_one() {
        assert_eq!(with_any(CLONE_NAMESPACES).unwrap().len(), 7);
        assert_eq!(with_any(UNSHARE_NAMESPACES).unwrap().len(), 8);
    }
}
