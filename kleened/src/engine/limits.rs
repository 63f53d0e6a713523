//! Resource limits as the API gives them (`memory`, `pids_limit`, `cpus` of a
//! [`ContainerConfig`]), checked and turned into the values a container record keeps and a
//! runtime enforces ([`Limits`]). Pure: the runtime says whether the host can enforce them, when
//! the container starts.
//!
//! In a request, `null` (or no field) leaves a limit as it is (on create: unlimited) and `0`
//! removes it; the record shows an unlimited value as `null`.

use kleene_api::{Container, ContainerConfig};

use crate::platform::Limits;

pub use crate::config::parse_size;

/// The smallest memory limit: below it even the container's init cannot run (Docker's minimum).
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// The largest CPU limit, in percent of one CPU.
const MAX_CPU_PERCENT: u32 = 1024 * 100;

/// A change of limits asked for: for each, `None` keeps it, `Some(None)` removes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitChange {
    /// Memory, in bytes.
    pub memory: Option<Option<u64>>,
    /// Processes.
    pub pids: Option<Option<u64>>,
    /// CPU time, in percent of one CPU.
    pub cpu_percent: Option<Option<u32>>,
}

impl LimitChange {
    /// The limits of `config`, each checked; the refusal names the field.
    pub fn from_config(config: &ContainerConfig) -> Result<LimitChange, String> {
        Ok(LimitChange {
            memory: config.memory.as_deref().map(parse_memory).transpose()?,
            pids: config.pids_limit.map(parse_pids).transpose()?,
            cpu_percent: config.cpus.as_ref().map(parse_cpus).transpose()?,
        })
    }

    /// Writes the change into a container record.
    pub fn apply_to(&self, container: &mut Container) {
        if let Some(memory) = self.memory {
            container.memory = memory;
        }
        if let Some(pids) = self.pids {
            container.pids_limit = pids;
        }
        if let Some(percent) = self.cpu_percent {
            container.cpus = percent.map(cpus_number);
        }
    }
}

/// The limits a container record holds.
pub fn of(container: &Container) -> Limits {
    Limits {
        memory: container.memory,
        pids: container.pids_limit,
        cpu_percent: container.cpus.as_ref().and_then(cpu_percent),
    }
}

/// A memory size: bytes, or a number (fractions allowed) with a unit `k`, `m`, `g`, `t` or `p`
/// (powers of 1024), optionally followed by `i` and `b` in either case, as Docker reads them
/// (`32m`, `1.5g`, `512MiB`); `0` is no limit.
pub fn parse_memory(text: &str) -> Result<Option<u64>, String> {
    let Some(bytes) = parse_size("memory", text)? else {
        return Ok(None);
    };
    if bytes < MIN_MEMORY {
        return Err(format!(
            "memory: '{text}' is below the smallest limit, 6m (6291456 bytes)"
        ));
    }
    Ok(Some(bytes))
}

/// A process count: at least 1; `0` is no limit.
pub fn parse_pids(value: i64) -> Result<Option<u64>, String> {
    match value {
        0 => Ok(None),
        n if n > 0 => Ok(Some(n as u64)),
        n => Err(format!(
            "pids_limit: {n} is not a number of processes: give at least 1, or 0 to remove the \
             limit"
        )),
    }
}

/// CPUs as a decimal number, a multiple of 0.01; `0` is no limit. Answers percent of one CPU.
pub fn parse_cpus(value: &serde_json::Number) -> Result<Option<u32>, String> {
    let cpus = value.as_f64().unwrap_or(f64::NAN);
    if !(cpus.is_finite() && cpus >= 0.0) {
        return Err(format!(
            "cpus: {value} is not a number of CPUs: give a positive decimal such as 0.5, or 0 to \
             remove the limit"
        ));
    }
    let percent = (cpus * 100.0).round();
    if (cpus * 100.0 - percent).abs() > 1e-6 {
        return Err(format!(
            "cpus: {value} is not a multiple of 0.01 (such as 0.5 or 1.25)"
        ));
    }
    if percent > f64::from(MAX_CPU_PERCENT) {
        return Err(format!(
            "cpus: {value} is more than the largest limit, {}",
            MAX_CPU_PERCENT / 100
        ));
    }
    // Exact: a whole number between 0 and MAX_CPU_PERCENT.
    let percent = percent as u32;
    Ok((percent > 0).then_some(percent))
}

/// The API's number of CPUs for `percent` of one CPU.
pub fn cpus_number(percent: u32) -> serde_json::Number {
    if percent.is_multiple_of(100) {
        serde_json::Number::from(percent / 100)
    } else {
        serde_json::Number::from_f64(f64::from(percent) / 100.0)
            .unwrap_or_else(|| serde_json::Number::from(0))
    }
}

/// Percent of one CPU of a number the record holds (made by [`cpus_number`]).
pub fn cpu_percent(cpus: &serde_json::Number) -> Option<u32> {
    parse_cpus(cpus).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_are_read_as_docker_reads_them() {
        let mib = 1024 * 1024;
        for (text, bytes) in [
            ("32m", 32 * mib),
            ("32M", 32 * mib),
            ("32mb", 32 * mib),
            ("32MiB", 32 * mib),
            ("32 MiB", 32 * mib),
            ("1g", 1024 * mib),
            ("1.5g", 1536 * mib),
            ("6m", 6 * mib),
            ("6291456", 6 * mib),
            ("7000k", 7000 * 1024),
            ("1t", 1024 * 1024 * mib),
        ] {
            assert_eq!(parse_memory(text), Ok(Some(bytes)), "{text}");
        }
        assert_eq!(parse_memory("0"), Ok(None));
        assert_eq!(parse_memory("0m"), Ok(None));
    }

    #[test]
    fn bad_memory_sizes_are_refused_naming_the_field() {
        for text in [
            "", "m", "abc", "32x", "-1", "1.2.3m", ".5g", "5.g", "32 m b", "1e3",
        ] {
            let err = parse_memory(text).unwrap_err();
            assert!(err.starts_with("memory: "), "{text}: {err}");
            assert!(err.contains("is not a size"), "{text}: {err}");
        }
        let err = parse_memory("5m").unwrap_err();
        assert_eq!(
            err,
            "memory: '5m' is below the smallest limit, 6m (6291456 bytes)"
        );
        assert!(parse_memory("1000000000000000000000")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_memory("16777216t").unwrap_err().contains("too large"));
        assert!(parse_memory("8192p").unwrap_err().contains("too large"));
    }

    #[test]
    fn pids_limits_are_positive_and_zero_removes() {
        assert_eq!(parse_pids(50), Ok(Some(50)));
        assert_eq!(parse_pids(0), Ok(None));
        let err = parse_pids(-1).unwrap_err();
        assert!(err.starts_with("pids_limit: -1 "), "{err}");
    }

    #[test]
    fn cpus_are_hundredths_of_a_cpu() {
        let number = |text: &str| serde_json::from_str::<serde_json::Number>(text).unwrap();
        assert_eq!(parse_cpus(&number("0.5")), Ok(Some(50)));
        assert_eq!(parse_cpus(&number("1.25")), Ok(Some(125)));
        assert_eq!(parse_cpus(&number("2")), Ok(Some(200)));
        assert_eq!(parse_cpus(&number("0.01")), Ok(Some(1)));
        assert_eq!(parse_cpus(&number("0")), Ok(None));
        assert_eq!(parse_cpus(&number("0.0")), Ok(None));
        let err = parse_cpus(&number("0.333")).unwrap_err();
        assert_eq!(
            err,
            "cpus: 0.333 is not a multiple of 0.01 (such as 0.5 or 1.25)"
        );
        assert!(parse_cpus(&number("-1"))
            .unwrap_err()
            .starts_with("cpus: -1 "));
        assert!(parse_cpus(&number("2000")).unwrap_err().contains("largest"));
        for percent in [1, 50, 100, 125, 333, 20000] {
            let shown = cpus_number(percent);
            assert_eq!(cpu_percent(&shown), Some(percent), "{shown}");
        }
        assert_eq!(cpus_number(50).to_string(), "0.5");
        assert_eq!(cpus_number(200).to_string(), "2");
    }

    #[test]
    fn a_change_keeps_removes_or_sets_each_limit() {
        let config: ContainerConfig =
            serde_json::from_value(serde_json::json!({"memory": "64m", "pids_limit": 0})).unwrap();
        let change = LimitChange::from_config(&config).unwrap();
        assert_eq!(
            change,
            LimitChange {
                memory: Some(Some(64 << 20)),
                pids: Some(None),
                cpu_percent: None,
            }
        );
        let mut container: Container = serde_json::from_value(serde_json::json!({
            "id": "c", "name": null, "image_id": "i", "cmd": [], "user": "", "env": [],
            "network_driver": "host", "public_ports": [], "jail_param": [],
            "restart_policy": "no", "persist": false, "created": "", "dataset": "",
            "running": false, "pids_limit": 10, "cpus": 0.5,
        }))
        .unwrap();
        change.apply_to(&mut container);
        assert_eq!(
            of(&container),
            Limits {
                memory: Some(64 << 20),
                pids: None,
                cpu_percent: Some(50),
            }
        );
        let bad: ContainerConfig =
            serde_json::from_value(serde_json::json!({"cpus": 0.001})).unwrap();
        assert!(LimitChange::from_config(&bad)
            .unwrap_err()
            .starts_with("cpus: "));
    }
}
