//! Fixtures the tests of several files of this folder share: a container's process spec and
//! image, mount sources, and an interface's ifconfig(8) status.

use kleene_api::NetworkDriver;

use crate::platform::runtime::{Limits, Mount, ProcessSpec};

pub(super) fn spec(rootfs: &std::path::Path) -> ProcessSpec {
    ProcessSpec {
        container_id: "c0ffee000001".into(),
        rootfs: rootfs.to_owned(),
        cmd: vec!["/usr/bin/id".into()],
        env: vec!["A=1".into()],
        user: String::new(),
        tty: false,
        tty_size: (24, 80),
        network: NetworkDriver::Host,
        jail_params: vec![],
        endpoints: vec![],
        mounts: vec![],
        limits: Limits::default(),
    }
}

/// A container root with root (home /root, which exists), nobody (home /nonexistent) and
/// ghost (in /etc/passwd, which jexec does not read).
pub(super) fn image() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::create_dir_all(root.path().join("root")).unwrap();
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:*:0:0:Charlie &:/root:/bin/sh\n\
         nobody:*:65534:65534:Unprivileged user:/nonexistent:/usr/sbin/nologin\n\
         ghost:*:1001:1001:Not in pwd.db:/root:/bin/sh\n",
    )
    .unwrap();
    root
}

/// A host directory and a host file to mount, beside the container's root.
pub(super) fn sources() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let conf = dir.path().join("site.conf");
    std::fs::write(&conf, "listen 80\n").unwrap();
    (dir, data, conf)
}

pub(super) fn mount(source: &std::path::Path, destination: &str, read_only: bool) -> Mount {
    Mount {
        source: source.to_owned(),
        destination: destination.into(),
        read_only,
        setuid: false,
        devices: false,
    }
}

pub(super) const MARKER: &str = "kleened:zroot/kleene";

pub(super) const BRIDGE_STATUS: &str =
    "kleene0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500
\tdescription: kleened:zroot/kleene
\toptions=0
\tether 58:9c:fc:10:ff:e4
\tinet 10.13.37.1 netmask 0xffffff00 broadcast 10.13.37.255
\tinet6 fe80::5a9c:fcff:fe10:ffe4%kleene0 prefixlen 64 scopeid 0x4
\tinet6 fd00:13:37::1 prefixlen 64
\tid 00:00:00:00:00:00 priority 32768 hellotime 2 fwddelay 15
\tmember: epair1a flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>
\t        ifmaxaddr 0 port 6 priority 128 path cost 2000
\tmember: epair0a flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>
\t        ifmaxaddr 0 port 5 priority 128 path cost 2000
\tgroups: bridge
\tnd6 options=9<PERFORMNUD,IFDISABLED>
";
