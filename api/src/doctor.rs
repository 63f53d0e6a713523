//! What `kleened doctor` finds on the daemon's host (`GET /doctor`, `POST /doctor/fix`, beyond the
//! Kleened API 0.1.1), and the text both `kleened doctor` and `klee doctor` print for it.

use serde::{Deserialize, Serialize};

/// How a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FindingStatus {
    /// As the daemon needs it.
    Ok,
    /// Works, but something will not work or needs a look (resource limits without the
    /// controllers, a volume's dataset without a volume).
    Warning,
    /// Broken, or left over.
    Problem,
}

impl FindingStatus {
    /// The word the API and the text use.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Ok => "ok",
            FindingStatus::Warning => "warning",
            FindingStatus::Problem => "problem",
        }
    }
}

/// One thing the doctor looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// What was checked, a stable name: `zfs.root`, `zfs.pool`, `linux.ip-forward`,
    /// `freebsd.pf`, `leftover.dataset`, ...
    pub check: String,
    /// How it stands.
    pub status: FindingStatus,
    /// What was found, naming the object.
    pub detail: String,
    /// The command that fixes it (or what to do, when no single command does); `null` when
    /// nothing needs fixing.
    #[serde(default)]
    pub fix: Option<String>,
    /// Whether `kleened doctor --fix` (`POST /doctor/fix`) does the fix.
    #[serde(default)]
    pub automatic: bool,
}

/// What one fix did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FixOutcome {
    /// The check whose finding it fixed.
    pub check: String,
    /// What was done, as the command that did it.
    pub action: String,
    /// Why it failed; `null` when it worked.
    #[serde(default)]
    pub error: Option<String>,
}

/// The doctor's report: every finding, problems first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DoctorReport {
    /// Whether the daemon was running on its root when the facts were read.
    pub daemon_running: bool,
    /// Every finding is ok (no warning, no problem): `kleened doctor` exits 0, else 1.
    pub healthy: bool,
    /// The findings, problems first, then warnings, then what is as it should be.
    pub findings: Vec<Finding>,
    /// For `POST /doctor/fix`: what was done, in order; the findings are those of a check
    /// made after it. Empty for `GET /doctor`.
    #[serde(default)]
    pub fixes: Vec<FixOutcome>,
}

impl DoctorReport {
    /// A report of `findings` (sorted here, problems first) and the fixes made before them.
    pub fn new(daemon_running: bool, mut findings: Vec<Finding>, fixes: Vec<FixOutcome>) -> Self {
        // Stable: within a status, the order the checks ran in.
        findings.sort_by_key(|f| std::cmp::Reverse(f.status));
        DoctorReport {
            daemon_running,
            healthy: findings.iter().all(|f| f.status == FindingStatus::Ok),
            findings,
            fixes,
        }
    }

    /// How many findings have `status`.
    pub fn count(&self, status: FindingStatus) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }

    /// The report as text: the fixes made, one line per finding (its fix indented below it),
    /// and a summary line.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        for fix in &self.fixes {
            match &fix.error {
                None => {
                    let _ = writeln!(text, "fixed    {:<24} {}", fix.check, fix.action);
                }
                Some(error) => {
                    let _ = writeln!(text, "failed   {:<24} {}: {error}", fix.check, fix.action);
                }
            }
        }
        if !self.fixes.is_empty() {
            text.push('\n');
        }
        for finding in &self.findings {
            let _ = writeln!(
                text,
                "{:<8} {:<24} {}",
                finding.status.as_str(),
                finding.check,
                finding.detail
            );
            if let Some(fix) = &finding.fix {
                let by = if finding.automatic {
                    " (--fix does this)"
                } else {
                    ""
                };
                let _ = writeln!(text, "{:<33} fix: {fix}{by}", "");
            }
        }
        let (problems, warnings) = (
            self.count(FindingStatus::Problem),
            self.count(FindingStatus::Warning),
        );
        let automatic = self
            .findings
            .iter()
            .filter(|f| f.status != FindingStatus::Ok && f.automatic)
            .count();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let _ = write!(
            text,
            "\n{}, {}",
            plural(problems, "problem"),
            plural(warnings, "warning")
        );
        if automatic > 0 {
            let _ = write!(text, "; --fix fixes {automatic} of them");
        }
        let _ = writeln!(
            text,
            " ({})",
            if self.daemon_running {
                "kleened is running"
            } else {
                "kleened is not running"
            }
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(check: &str, status: FindingStatus, fix: Option<&str>, automatic: bool) -> Finding {
        Finding {
            check: check.into(),
            status,
            detail: format!("{check} detail"),
            fix: fix.map(str::to_owned),
            automatic,
        }
    }

    #[test]
    fn problems_come_first_and_make_the_report_unhealthy() {
        let report = DoctorReport::new(
            true,
            vec![
                finding("zfs.root", FindingStatus::Ok, None, false),
                finding(
                    "linux.limits",
                    FindingStatus::Warning,
                    Some("mount it"),
                    false,
                ),
                finding(
                    "leftover.dataset",
                    FindingStatus::Problem,
                    Some("zfs destroy -r p/x"),
                    true,
                ),
                finding("zfs.pool", FindingStatus::Ok, None, false),
            ],
            vec![],
        );
        let order: Vec<&str> = report.findings.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(
            order,
            ["leftover.dataset", "linux.limits", "zfs.root", "zfs.pool"]
        );
        assert!(!report.healthy);
        let text = report.to_text();
        assert!(
            text.contains("problem  leftover.dataset         leftover.dataset detail\n"),
            "{text}"
        );
        assert!(
            text.contains("fix: zfs destroy -r p/x (--fix does this)\n"),
            "{text}"
        );
        assert!(text.contains("fix: mount it\n"), "{text}");
        assert!(
            text.ends_with("1 problem, 1 warning; --fix fixes 1 of them (kleened is running)\n"),
            "{text}"
        );
    }

    #[test]
    fn a_warning_makes_the_report_unhealthy_and_fixes_are_listed_first() {
        let report = DoctorReport::new(
            false,
            vec![finding(
                "freebsd.racct",
                FindingStatus::Warning,
                Some("kleened init"),
                false,
            )],
            vec![
                FixOutcome {
                    check: "leftover.dataset".into(),
                    action: "zfs destroy -r p/x".into(),
                    error: None,
                },
                FixOutcome {
                    check: "leftover.mount".into(),
                    action: "umount /p/m".into(),
                    error: Some("busy".into()),
                },
            ],
        );
        assert!(!report.healthy);
        let text = report.to_text();
        assert!(text.starts_with("fixed    leftover.dataset         zfs destroy -r p/x\nfailed   leftover.mount           umount /p/m: busy\n\n"), "{text}");
        assert!(
            text.ends_with("0 problems, 1 warning (kleened is not running)\n"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["findings"][0]["status"], "warning");
        let back: DoctorReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
