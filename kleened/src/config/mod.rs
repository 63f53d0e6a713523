//! The daemon's configuration: the YAML file as written, and the resolved [`Config`] the rest of the
//! daemon uses.
//!
//! Resolution is strict: an unknown key, a missing required key or a value of the wrong shape stops the
//! daemon with a message that names the key. The keys are those of the Kleened configuration file, so
//! a file written for Kleened works here, plus optional keys for paths Kleened hard-codes.

mod listener;

use listener::{resolve_limits, resolve_listener, RawListener};
pub use listener::{ConnectionLimits, ListenerConfig, TlsSettings};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the configuration file is read from when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/usr/local/etc/kleened/config.yaml";

/// An error in the configuration; its message names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read configuration file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("configuration file {path} is not valid: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("'{key}' key not set in configuration file")]
    Missing { key: String },
    #[error("invalid value for '{key}': {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The operating system the configuration is resolved for. Some keys are required only where they
/// mean something (the pf paths on FreeBSD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetOs {
    FreeBsd,
    Linux,
}

impl TargetOs {
    /// The system this daemon was built for.
    pub fn current() -> Self {
        if cfg!(target_os = "freebsd") {
            TargetOs::FreeBsd
        } else {
            TargetOs::Linux
        }
    }
}

/// A size as written: bytes, or a string with a unit (`10G`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

impl RawSize {
    fn resolve(self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self {
            RawSize::Bytes(0) => Ok(None),
            RawSize::Bytes(bytes) => Ok(Some(bytes)),
            RawSize::Text(text) => parse_size(key, &text).map_err(|reason| invalid(key, reason)),
        }
    }
}

fn resolve_size(raw: Option<RawSize>, key: &str) -> Result<Option<u64>, ConfigError> {
    raw.map(|raw| raw.resolve(key))
        .transpose()
        .map(Option::flatten)
}

/// The configuration file as written. Every field is optional here so that a missing key can be
/// reported by name during resolution instead of by serde's generic message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    kleene_root: Option<String>,
    api_listening_sockets: Option<Vec<RawListener>>,
    pf_config_path: Option<PathBuf>,
    pf_config_template_path: Option<PathBuf>,
    enable_logging: Option<bool>,
    log_level: Option<String>,
    log_file: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    metadata_path: Option<PathBuf>,
    shutdown_timeout_secs: Option<u64>,
    cgroup_parent: Option<String>,
    cgroup_hierarchy: Option<String>,
    nft_table: Option<String>,
    max_connections: Option<u64>,
    request_header_timeout_secs: Option<u64>,
    request_body_timeout_secs: Option<u64>,
    container_log_dir: Option<PathBuf>,
    container_log_max_bytes: Option<u64>,
    container_log_max_files: Option<u64>,
    container_storage_size: Option<RawSize>,
    volume_size: Option<RawSize>,
    kleene_root_reservation: Option<RawSize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// Accepts the syslog-style names of the Kleened configuration and the usual short ones.
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" | "notice" => LogLevel::Info,
            "warning" | "warn" => LogLevel::Warn,
            "error" | "critical" | "alert" | "emergency" => LogLevel::Error,
            _ => return None,
        })
    }

    /// The matching `tracing` filter directive.
    pub fn as_directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// TLS settings of one listener; every path was checked to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Root ZFS dataset for images, containers and volumes.
    pub kleene_root: String,
    /// Where the API is served.
    pub listeners: Vec<ListenerConfig>,
    /// The rendered pf ruleset (FreeBSD).
    pub pf_config_path: Option<PathBuf>,
    /// The pf ruleset template (FreeBSD).
    pub pf_config_template_path: Option<PathBuf>,
    /// Also log to `log_file`.
    pub enable_logging: bool,
    /// Log threshold.
    pub log_level: LogLevel,
    /// Log file used when `enable_logging` is set.
    pub log_file: PathBuf,
    /// File holding the daemon's pid while it runs.
    pub pidfile: PathBuf,
    /// The SQLite metadata database; by default `metadata.sqlite` in the root dataset's mountpoint.
    pub metadata_path: Option<PathBuf>,
    /// How long running requests may take to finish after a shutdown signal.
    pub shutdown_timeout: std::time::Duration,
    /// Linux: the cgroup (below the daemon's own) holding one cgroup per container; by default
    /// `kleene-<kleene_root with - for />`, so daemons of different roots have their own.
    pub cgroup_parent: String,
    /// Linux: the cgroup hierarchy to track containers in; `None` means cgroup v2 where it is
    /// mounted, else the v1 `pids` hierarchy.
    pub cgroup_hierarchy: Option<CgroupHierarchy>,
    /// Linux: the nftables table (`inet <name>`) holding the daemon's packet-filter rules.
    pub nft_table: String,
    /// Where containers' output is kept (`container_log_dir`, by default
    /// `/var/log/kleened/<kleene_root with - for />`), and how much (`container_log_max_bytes`
    /// per file, `container_log_max_files` files per container).
    pub container_logs: LogConfig,
    /// Sizes of what the daemon stores: the default quota of containers and volumes, and the
    /// space reserved for the root dataset itself (the metadata database) against a full pool.
    pub storage: StorageConfig,
}

/// A cgroup hierarchy the Linux runtime can track containers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupHierarchy {
    /// The unified hierarchy (`v2`).
    V2,
    /// The v1 hierarchy with the `pids` controller (`v1`).
    V1Pids,
}

impl Config {
    /// Reads and resolves the file at `path`.
    pub fn load(path: &Path, os: TargetOs) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Config::parse(&text, path, os)
    }

    /// Resolves configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, os: TargetOs) -> Result<Config, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_norway::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                reason: e.to_string(),
            })?
        };
        resolve(raw, os)
    }
}

fn required<T>(value: Option<T>, key: &str) -> Result<T, ConfigError> {
    value.ok_or_else(|| ConfigError::Missing {
        key: key.to_owned(),
    })
}

fn resolve(raw: RawConfig, os: TargetOs) -> Result<Config, ConfigError> {
    let kleene_root = required(raw.kleene_root, "kleene_root")?;
    validate_dataset_name(&kleene_root).map_err(|reason| invalid("kleene_root", reason))?;
    let default_cgroup_parent = format!("kleene-{}", kleene_root.replace(['/', ':'], "-"));
    let default_log_dir =
        PathBuf::from("/var/log/kleened").join(kleene_root.replace(['/', ':'], "-"));
    let raw_listeners = required(raw.api_listening_sockets, "api_listening_sockets")?;
    if raw_listeners.is_empty() {
        return Err(invalid(
            "api_listening_sockets",
            "at least one listener is needed",
        ));
    }
    let limits = resolve_limits(
        raw.max_connections,
        raw.request_header_timeout_secs,
        raw.request_body_timeout_secs,
    )?;
    let listeners = raw_listeners
        .into_iter()
        .enumerate()
        .map(|(index, raw)| resolve_listener(index, raw, limits))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashMap::new();
    for (index, listener) in listeners.iter().enumerate() {
        if let Some(first) = seen.insert(listener.address.location.clone(), index) {
            return Err(invalid(
                format!("api_listening_sockets[{index}].address"),
                format!("{} is already used by entry {first}", listener.address),
            ));
        }
    }
    let (pf_config_path, pf_config_template_path) = match os {
        TargetOs::FreeBsd => (
            Some(required(raw.pf_config_path, "pf_config_path")?),
            Some(required(
                raw.pf_config_template_path,
                "pf_config_template_path",
            )?),
        ),
        TargetOs::Linux => (raw.pf_config_path, raw.pf_config_template_path),
    };
    let enable_logging = required(raw.enable_logging, "enable_logging")?;
    let level_text = required(raw.log_level, "log_level")?;
    let log_level = LogLevel::parse(&level_text).ok_or_else(|| {
        invalid(
            "log_level",
            format!("'{level_text}' is not one of debug, info, notice, warning, error, critical, alert, emergency"),
        )
    })?;
    let metadata_path = raw.metadata_path;
    for (key, path) in [
        ("metadata_path", metadata_path.as_ref()),
        ("log_file", raw.log_file.as_ref()),
        ("pidfile", raw.pidfile.as_ref()),
    ] {
        if let Some(path) = path {
            if !path.is_absolute() {
                return Err(invalid(
                    key,
                    format!("'{}' is not an absolute path", path.display()),
                ));
            }
        }
    }
    Ok(Config {
        kleene_root,
        listeners,
        pf_config_path,
        pf_config_template_path,
        enable_logging,
        log_level,
        log_file: raw
            .log_file
            .unwrap_or_else(|| PathBuf::from("/var/log/kleened.log")),
        pidfile: raw
            .pidfile
            .unwrap_or_else(|| PathBuf::from("/var/run/kleened.pid")),
        metadata_path,
        shutdown_timeout: std::time::Duration::from_secs(raw.shutdown_timeout_secs.unwrap_or(10)),
        cgroup_parent: match raw.cgroup_parent {
            Some(name) if valid_cgroup_name(&name) => name,
            Some(name) => {
                return Err(invalid(
                    "cgroup_parent",
                    format!("'{name}' is not a simple name"),
                ))
            }
            // One per root: two daemons on different roots never share a parent.
            None => default_cgroup_parent,
        },
        nft_table: match raw.nft_table {
            Some(name) if valid_cgroup_name(&name) && name.len() <= 64 => name,
            Some(name) => {
                return Err(invalid(
                    "nft_table",
                    format!("'{name}' is not a simple name"),
                ))
            }
            None => "kleene".to_owned(),
        },
        storage: {
            let config = StorageConfig {
                container_size: resolve_size(raw.container_storage_size, "container_storage_size")?,
                volume_size: resolve_size(raw.volume_size, "volume_size")?,
                root_reservation: match raw.kleene_root_reservation {
                    None => Some(StorageConfig::DEFAULT_ROOT_RESERVATION),
                    some => resolve_size(some, "kleene_root_reservation")?,
                },
            };
            for (key, size) in [
                ("container_storage_size", config.container_size),
                ("volume_size", config.volume_size),
            ] {
                if size.is_some_and(|bytes| bytes < StorageConfig::MIN_SIZE) {
                    return Err(invalid(key, "must be at least 1m (or 0: unlimited)"));
                }
            }
            config
        },
        container_logs: {
            let dir = raw.container_log_dir.unwrap_or(default_log_dir);
            if !dir.is_absolute() {
                return Err(invalid(
                    "container_log_dir",
                    format!("'{}' is not an absolute path", dir.display()),
                ));
            }
            let max_size = raw
                .container_log_max_bytes
                .unwrap_or(LogConfig::DEFAULT_MAX_SIZE);
            if max_size < 4096 {
                return Err(invalid("container_log_max_bytes", "must be at least 4096"));
            }
            let max_files = raw
                .container_log_max_files
                .unwrap_or(LogConfig::DEFAULT_MAX_FILES as u64);
            if max_files > 100 {
                return Err(invalid(
                    "container_log_max_files",
                    "must be from 0 (no logs) to 100",
                ));
            }
            LogConfig {
                dir,
                max_size,
                max_files: usize::try_from(max_files).unwrap_or(1),
            }
        },
        cgroup_hierarchy: match raw.cgroup_hierarchy.as_deref() {
            None | Some("auto") => None,
            Some("v2") => Some(CgroupHierarchy::V2),
            Some("v1") => Some(CgroupHierarchy::V1Pids),
            Some(other) => {
                return Err(invalid(
                    "cgroup_hierarchy",
                    format!("'{other}' is not one of auto, v2, v1"),
                ))
            }
        },
    })
}

/// A cgroup directory name: letters, digits and `_-.`, not starting with a dot.
fn valid_cgroup_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// A ZFS dataset name: components of letters, digits and `_-.:` separated by single slashes.
fn validate_dataset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the dataset name is empty".to_owned());
    }
    let valid_component = |c: &str| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-.:".contains(ch))
    };
    if !name.split('/').all(valid_component) {
        return Err(format!("'{name}' is not a valid ZFS dataset name"));
    }
    Ok(())
}

fn describe_yaml(value: &serde_norway::Value) -> String {
    match serde_norway::to_string(value) {
        Ok(text) => format!("'{}'", text.trim()),
        Err(_) => "a value of another kind".to_owned(),
    }
}

/// Where and how much of containers' output is kept (`container_logs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The directory holding one directory per container.
    pub dir: PathBuf,
    /// The most one file holds before it is rotated.
    pub max_size: u64,
    /// How many files a container keeps (the current one and the rotated ones); 0 keeps no
    /// logs at all.
    pub max_files: usize,
}

impl LogConfig {
    /// 8 MiB files, two per container: a busy container keeps at most 16 MiB.
    pub const DEFAULT_MAX_SIZE: u64 = 8 * 1024 * 1024;
    /// See [`LogConfig::DEFAULT_MAX_SIZE`].
    pub const DEFAULT_MAX_FILES: usize = 2;
}

/// How much the daemon's datasets may hold, from the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageConfig {
    /// The quota of a container created without `storage_size` (`container_storage_size`).
    pub container_size: Option<u64>,
    /// The quota of a volume created without `size` (`volume_size`).
    pub volume_size: Option<u64>,
    /// The `refreservation` of the root dataset (`kleene_root_reservation`): space no
    /// container or volume can take from the metadata database and the daemon's own files.
    pub root_reservation: Option<u64>,
}

impl StorageConfig {
    /// The root's reservation when the configuration says nothing: 64 MiB.
    pub const DEFAULT_ROOT_RESERVATION: u64 = 64 << 20;
    /// The smallest quota of a container or volume: 1 MiB.
    pub const MIN_SIZE: u64 = 1 << 20;
}

/// A size in bytes (a number, with `k`, `m`, `g`, `t` or `p` and an optional `b`/`ib`, fractions
/// exact to the byte) for the field `field` (named in the errors); `0` is none. The configuration
/// and the API read sizes alike.
pub fn parse_size(field: &str, text: &str) -> Result<Option<u64>, String> {
    let invalid = || {
        format!(
            "{field}: '{text}' is not a size: give bytes, or a number with k, m, g or t (such as \
             32m or 1g); 0 removes the limit"
        )
    };
    let lower = text.trim().to_ascii_lowercase();
    let unit_at = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(unit_at);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(invalid()),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(invalid());
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') {
        return Err(invalid());
    }
    let too_large = || format!("{field}: '{text}' is too large");
    let whole: u64 = whole.parse().map_err(|_| too_large())?;
    let mut bytes = whole.checked_shl(shift).filter(|b| b >> shift == whole);
    // The fraction, exactly: digits / 10^n of the unit, rounded down to a byte.
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().map_err(|_| invalid())?;
        let scale = 10u128
            .checked_pow(u32::try_from(fraction.len()).map_err(|_| invalid())?)
            .ok_or_else(invalid)?;
        let part = u64::try_from((digits << shift) / scale).map_err(|_| too_large())?;
        bytes = bytes.and_then(|b| b.checked_add(part));
    }
    let bytes = bytes
        .filter(|b| i64::try_from(*b).is_ok())
        .ok_or_else(too_large)?;
    Ok((bytes != 0).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kleene_api::ApiScheme;

    const MINIMAL: &str = "
kleene_root: zroot/kleene
api_listening_sockets:
  - address: http:///var/run/kleened.sock
pf_config_path: /etc/pf.conf
pf_config_template_path: /usr/local/etc/kleened/pf.conf.kleene
enable_logging: true
log_level: info
";

    fn parse(text: &str, os: TargetOs) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("config.yaml"), os)
    }

    #[test]
    fn the_reference_example_resolves_with_derived_paths() {
        let config = parse(MINIMAL, TargetOs::FreeBsd).unwrap();
        assert_eq!(config.kleene_root, "zroot/kleene");
        assert_eq!(
            config.metadata_path, None,
            "derived from the root's mountpoint at start"
        );
        assert_eq!(config.pidfile, PathBuf::from("/var/run/kleened.pid"));
        assert_eq!(config.log_level, LogLevel::Info);
        assert_eq!(config.listeners.len(), 1);
        assert!(config.listeners[0].tls.is_none());
    }

    #[test]
    fn the_cgroup_parent_is_the_roots_own_by_default() {
        let config = parse(MINIMAL, TargetOs::Linux).unwrap();
        assert_eq!(config.cgroup_parent, "kleene-zroot-kleene");
        let config = parse(&format!("{MINIMAL}cgroup_parent: mine\n"), TargetOs::Linux).unwrap();
        assert_eq!(config.cgroup_parent, "mine");
    }

    #[test]
    fn the_cgroup_hierarchy_is_auto_v2_or_v1() {
        let with = |value: &str| {
            parse(
                &format!("{MINIMAL}cgroup_hierarchy: {value}\n"),
                TargetOs::Linux,
            )
        };
        assert_eq!(
            parse(MINIMAL, TargetOs::Linux).unwrap().cgroup_hierarchy,
            None
        );
        assert_eq!(with("auto").unwrap().cgroup_hierarchy, None);
        assert_eq!(
            with("v2").unwrap().cgroup_hierarchy,
            Some(CgroupHierarchy::V2)
        );
        assert_eq!(
            with("v1").unwrap().cgroup_hierarchy,
            Some(CgroupHierarchy::V1Pids)
        );
        let err = with("v3").unwrap_err();
        assert!(err.to_string().contains("cgroup_hierarchy"), "{err}");
    }

    #[test]
    fn the_shipped_freebsd_sample_resolves() {
        let text = include_str!("../../../example/kleened_config.yaml");
        let config = parse(text, TargetOs::FreeBsd).unwrap();
        assert_eq!(
            config.pidfile,
            PathBuf::from("/var/run/kleened.pid"),
            "the rc.d script expects this pidfile"
        );
    }

    #[test]
    fn every_required_key_is_named_when_missing() {
        for key in [
            "kleene_root",
            "api_listening_sockets",
            "pf_config_path",
            "pf_config_template_path",
            "enable_logging",
            "log_level",
        ] {
            let text: String = MINIMAL
                .lines()
                .filter(|line| {
                    !(line.starts_with(key)
                        || key == "api_listening_sockets" && line.starts_with("  -"))
                })
                .map(|line| format!("{line}\n"))
                .collect();
            let err = parse(&text, TargetOs::FreeBsd).unwrap_err();
            assert_eq!(
                err,
                ConfigError::Missing {
                    key: key.to_owned()
                },
                "removing {key}"
            );
            assert!(err.to_string().contains(key));
        }
    }

    #[test]
    fn pf_paths_are_optional_on_linux() {
        let text: String = MINIMAL
            .lines()
            .filter(|l| !l.starts_with("pf_"))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = parse(&text, TargetOs::Linux).unwrap();
        assert_eq!(config.pf_config_path, None);
    }

    #[test]
    fn empty_file_reports_the_first_missing_key() {
        assert_eq!(
            parse("", TargetOs::Linux).unwrap_err(),
            ConfigError::Missing {
                key: "kleene_root".into()
            }
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = parse(&format!("{MINIMAL}kleene_rot: x\n"), TargetOs::Linux).unwrap_err();
        assert!(err.to_string().contains("kleene_rot"), "{err}");
        let err = parse(
            &MINIMAL.replace("log_level: info", "log_level: loud"),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "log_level"),
            "{err}"
        );
        let err = parse(
            &MINIMAL.replace("enable_logging: true", "enable_logging: yes please"),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert!(err.to_string().contains("enable_logging"), "{err}");
        let err = parse(
            &MINIMAL.replace("zroot/kleene", "zroot//kleene"),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "kleene_root"),
            "{err}"
        );
    }

    #[test]
    fn connection_limits_default_and_apply_to_every_listener() {
        let two = MINIMAL.replace(
            "  - address: http:///var/run/kleened.sock\n",
            "  - address: http:///var/run/kleened.sock\n  - address: http://127.0.0.1:8080\n",
        );
        let config = parse(&two, TargetOs::FreeBsd).unwrap();
        for listener in &config.listeners {
            assert_eq!(listener.limits, ConnectionLimits::default());
        }
        assert_eq!(ConnectionLimits::default().max_connections, 256);
        assert_eq!(
            ConnectionLimits::default().header_timeout,
            std::time::Duration::from_secs(30)
        );
        assert_eq!(
            ConnectionLimits::default().body_timeout,
            std::time::Duration::from_secs(60)
        );
        let text = format!(
            "{two}max_connections: 4\nrequest_header_timeout_secs: 2\nrequest_body_timeout_secs: 3\n"
        );
        let config = parse(&text, TargetOs::FreeBsd).unwrap();
        for listener in &config.listeners {
            assert_eq!(
                listener.limits,
                ConnectionLimits {
                    max_connections: 4,
                    header_timeout: std::time::Duration::from_secs(2),
                    body_timeout: std::time::Duration::from_secs(3),
                }
            );
        }
    }

    #[test]
    fn connection_limits_of_zero_or_not_numbers_are_refused_by_name() {
        for (line, key) in [
            ("max_connections: 0", "max_connections"),
            (
                "request_header_timeout_secs: 0",
                "request_header_timeout_secs",
            ),
            ("request_body_timeout_secs: 0", "request_body_timeout_secs"),
        ] {
            let err = parse(&format!("{MINIMAL}{line}\n"), TargetOs::FreeBsd).unwrap_err();
            assert_eq!(
                err,
                ConfigError::Invalid {
                    key: key.into(),
                    reason: "must be at least 1".into()
                }
            );
        }
        let err = parse(
            &format!("{MINIMAL}max_connections: many\n"),
            TargetOs::FreeBsd,
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_connections"), "{err}");
    }

    #[test]
    fn syslog_level_names_map_onto_tracing_levels() {
        for (name, level) in [
            ("debug", LogLevel::Debug),
            ("notice", LogLevel::Info),
            ("warning", LogLevel::Warn),
            ("critical", LogLevel::Error),
            ("emergency", LogLevel::Error),
        ] {
            assert_eq!(LogLevel::parse(name), Some(level));
        }
    }

    fn with_listener(listener: &str) -> String {
        MINIMAL.replace("  - address: http:///var/run/kleened.sock\n", listener)
    }

    #[test]
    fn listener_address_shapes() {
        let config = parse(
            &with_listener(
                "  - address: http://127.0.0.1:8080\n  - address: \"http://[::1]:8080/\"\n",
            ),
            TargetOs::Linux,
        )
        .unwrap();
        assert_eq!(
            config.listeners[0].address.socket_addr(),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            config.listeners[1].address.socket_addr(),
            Some("[::1]:8080".parse().unwrap())
        );

        for bad in [
            "http://localhost:8080",
            "http://127.0.0.1:8080?x",
            "unix:///tmp/s",
        ] {
            let err = parse(
                &with_listener(&format!("  - address: \"{bad}\"\n")),
                TargetOs::Linux,
            )
            .unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { ref key, .. } if key == "api_listening_sockets[0].address"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_directory_is_not_a_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse(
            &with_listener(&format!("  - address: http://{}\n", dir.path().display())),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn duplicate_listeners_are_refused() {
        let err = parse(
            &with_listener("  - address: http:///tmp/a.sock\n  - address: https:///tmp/a.sock\n    tlscert: /nonexistent\n"),
            TargetOs::Linux,
        )
        .unwrap_err();
        // The missing certificate is found first; without it the duplicate is reported.
        assert!(err.to_string().contains("tlscert"), "{err}");
        let err = parse(
            &with_listener("  - address: http:///tmp/a.sock\n  - address: http:///tmp/a.sock\n"),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert!(err.to_string().contains("already used"), "{err}");
    }

    #[test]
    fn tls_files_must_exist_and_tlsverify_must_be_boolean() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "x").unwrap();
        let base = format!(
            "  - address: https://127.0.0.1:8085\n    tlscert: {}\n",
            cert.display()
        );

        let config = parse(&with_listener(&base), TargetOs::Linux).unwrap();
        let tls = config.listeners[0].tls.clone().unwrap();
        assert_eq!(tls.cert, cert);
        assert!(!tls.verify_client);
        assert!(
            config.listeners[0].admits_anyone(),
            "TLS without client certificates"
        );
        let plain = parse(
            &with_listener(
                "  - address: http:///var/run/kleened.sock\n  - address: http://127.0.0.1:8080\n",
            ),
            TargetOs::Linux,
        )
        .unwrap();
        assert!(plain
            .listeners
            .iter()
            .all(|l| l.address.scheme == ApiScheme::Http));
        assert_eq!(
            plain
                .listeners
                .iter()
                .map(ListenerConfig::admits_anyone)
                .collect::<Vec<_>>(),
            vec![false, true],
            "the unix socket is guarded by its mode, plain TCP by nothing"
        );

        let err = parse(
            &with_listener(&format!("{base}    tlskey: /no/such/key.pem\n")),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert_eq!(
            err,
            invalid(
                "api_listening_sockets[0].tlskey",
                "file '/no/such/key.pem' does not exist"
            )
        );

        let err = parse(
            &with_listener(&format!("{base}    tlsverify: maybe\n")),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "api_listening_sockets[0].tlsverify")
        );

        let err = parse(
            &with_listener(&format!("{base}    tlsverify: true\n")),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                key: "api_listening_sockets[0].tlscacert".into()
            }
        );

        let err = parse(
            &with_listener("  - address: https://127.0.0.1:8085\n"),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                key: "api_listening_sockets[0].tlscert".into()
            }
        );

        let err = parse(
            &with_listener(&format!(
                "  - address: http://127.0.0.1:8085\n    tlscert: {}\n",
                cert.display()
            )),
            TargetOs::Linux,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not https"), "{err}");
    }
}
