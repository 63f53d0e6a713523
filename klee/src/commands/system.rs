//! `klee version` and `klee info`: what klee and kleened say about themselves (`GET /info`);
//! `klee doctor`: what kleened finds on its host (`GET /doctor`, `POST /doctor/fix`).

use crate::output::printable;
use http::{Method, StatusCode};
use kleene_api::{DoctorReport, Info};
use serde_json::json;

use super::{print_json, Output};
use crate::connection::{ClientError, Connection};
use crate::output::duration;

/// What the daemon says about itself, as it sent it: its `/info`, or nothing from a daemon that
/// has no such route (Kleene's own kleened, or one of ours older than it).
async fn daemon_info(conn: &Connection) -> Result<Option<serde_json::Value>, ClientError> {
    match conn.call(Method::GET, "/info", None).await {
        Ok(info) => Ok(Some(info)),
        Err(ClientError::Api { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
        Err(err) => Err(err),
    }
}

fn decode(conn: &Connection, raw: serde_json::Value) -> Result<Info, ClientError> {
    serde_json::from_value(raw).map_err(|e| ClientError::Protocol {
        host: conn.host(),
        reason: format!("/info: {e}"),
    })
}

/// Prints klee's versions, then the daemon's. The client's part is printed before the daemon is
/// asked, so it is there even when the daemon cannot be reached (which then fails the command).
pub async fn version(conn: &Connection, out: Output) -> Result<(), ClientError> {
    if out.json {
        let daemon = match daemon_info(conn).await? {
            Some(raw) => Some(decode(conn, raw)?),
            None => None,
        };
        print_json(&json!({
            "client": {
                "version": env!("CARGO_PKG_VERSION"),
                "api_version": kleene_api::API_VERSION,
            },
            "daemon": daemon.map(|info| json!({
                "version": info.version,
                "api_version": info.api_version,
                "os": info.os,
                "runtime": info.runtime,
            })),
        }));
        return Ok(());
    }
    print!("{}", render_client_version());
    let daemon = match daemon_info(conn).await? {
        Some(raw) => Some(decode(conn, raw)?),
        None => None,
    };
    print!(
        "{}",
        printable(&render_daemon_version(&conn.host(), daemon.as_ref()))
    );
    Ok(())
}

/// Prints what the daemon says about itself and its host; with `--json`, its JSON as it is
/// (fields this klee does not know yet included).
pub async fn info(conn: &Connection, out: Output) -> Result<(), ClientError> {
    let Some(raw) = daemon_info(conn).await? else {
        return Err(ClientError::Failed(format!(
            "kleened at {} does not say: it has no GET /info (it is older than klee info)",
            conn.host()
        )));
    };
    if out.json {
        print_json(&raw);
    } else {
        print!("{}", printable(&render_info(&decode(conn, raw)?)));
    }
    Ok(())
}

/// Prints kleened's examination of its host (with `fix`, after its safe fixes); answers 0 when
/// every finding is ok, 1 otherwise.
pub async fn doctor(conn: &Connection, fix: bool, out: Output) -> Result<i32, ClientError> {
    let (method, path) = if fix {
        (Method::POST, "/doctor/fix")
    } else {
        (Method::GET, "/doctor")
    };
    let raw: serde_json::Value = match conn.call(method, path, None).await {
        Ok(raw) => raw,
        Err(ClientError::Api { status, .. }) if status == StatusCode::NOT_FOUND => {
            return Err(ClientError::Failed(format!(
                "kleened at {} has no {path} (it is older than klee doctor)",
                conn.host()
            )))
        }
        Err(err) => return Err(err),
    };
    let report: DoctorReport =
        serde_json::from_value(raw.clone()).map_err(|e| ClientError::Protocol {
            host: conn.host(),
            reason: format!("{path}: {e}"),
        })?;
    if out.json {
        print_json(&raw);
    } else {
        print!("{}", printable(&report.to_text()));
    }
    Ok(if report.healthy { 0 } else { 1 })
}

fn render_client_version() -> String {
    format!(
        "Client: klee\n Version:      {}\n API version:  {}\n",
        env!("CARGO_PKG_VERSION"),
        kleene_api::API_VERSION
    )
}

fn render_daemon_version(host: &str, info: Option<&Info>) -> String {
    match info {
        Some(info) => format!(
            "Daemon: kleened at {host}\n Version:      {}\n API version:  {}\n OS/runtime:   {}/{}\n",
            info.version, info.api_version, info.os, info.runtime
        ),
        None => format!(
            "Daemon: at {host}\n Version:      the daemon does not say (it has no GET /info: \
             an older kleened)\n"
        ),
    }
}

/// A figure the daemon may not know (or an older daemon not send).
fn or_unknown<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
}

fn render_info(info: &Info) -> String {
    let host = match (&info.os_version, &info.machine) {
        (Some(version), Some(machine)) => format!("{} {version} ({machine})", info.os),
        (Some(version), None) => format!("{} {version}", info.os),
        _ => info.os.clone(),
    };
    let space = match (&info.kleene_root_used, &info.kleene_root_available) {
        (None, None) => "space unknown".to_owned(),
        (used, available) => format!(
            "{} used, {} available",
            or_unknown(used.as_deref()),
            or_unknown(available.as_deref())
        ),
    };
    let containers = match (info.containers, info.containers_running) {
        (Some(all), running) => format!("{all} ({} running)", or_unknown(running)),
        (None, running) => format!("unknown ({} running)", or_unknown(running)),
    };
    let uptime = info
        .uptime_seconds
        .map_or_else(|| "unknown".to_owned(), duration);
    let rows = [
        (
            "Daemon",
            format!("kleened {}, API {}", info.version, info.api_version),
        ),
        ("Up for", uptime),
        ("Host", host),
        ("Runtime", info.runtime.clone()),
        (
            "Default network driver",
            serde_json::to_value(info.default_network_driver)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        ),
        ("ZFS root", format!("{} ({space})", info.kleene_root)),
        ("Images", or_unknown(info.images)),
        ("Containers", containers),
        ("Networks", or_unknown(info.networks)),
        ("Volumes", or_unknown(info.volumes)),
    ];
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(label, value)| format!("{:<width$} {value}\n", format!("{label}:")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_daemon::FakeDaemon;

    const INFO: &str = r#"{"version":"0.2.0","api_version":"0.1.1","os":"linux",
        "runtime":"namespaces","default_network_driver":"vnet","kleene_root":"pool/kleene",
        "os_version":"6.1.0-18-amd64","machine":"x86_64","kleene_root_used":"1.52G",
        "kleene_root_available":"3.10G","images":3,"containers":5,"containers_running":2,
        "networks":1,"volumes":0,"uptime_seconds":11045,"added_later":true}"#;

    /// The first version of `/info`, before the figures.
    const OLD_INFO: &str = r#"{"version":"0.1.0","api_version":"0.1.1","os":"freebsd",
        "runtime":"jail","default_network_driver":"ipnet","kleene_root":"zroot/kleene"}"#;

    fn parse(text: &str) -> Info {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn info_shows_every_figure() {
        assert_eq!(
            render_info(&parse(INFO)),
            "\
Daemon:                 kleened 0.2.0, API 0.1.1
Up for:                 3 hours 4 minutes
Host:                   linux 6.1.0-18-amd64 (x86_64)
Runtime:                namespaces
Default network driver: vnet
ZFS root:               pool/kleene (1.52G used, 3.10G available)
Images:                 3
Containers:             5 (2 running)
Networks:               1
Volumes:                0
"
        );
    }

    #[test]
    fn info_from_a_daemon_that_gives_fewer_figures_says_unknown() {
        let text = render_info(&parse(OLD_INFO));
        assert!(text.contains("Host:                   freebsd\n"), "{text}");
        assert!(text.contains("ZFS root:               zroot/kleene (space unknown)\n"));
        assert!(text.contains("Containers:             unknown (unknown running)\n"));
        assert!(text.contains("Up for:                 unknown\n"));
    }

    #[test]
    fn version_names_both_sides() {
        let client = render_client_version();
        assert!(client.starts_with("Client: klee\n"), "{client}");
        assert!(client.contains(&format!(" Version:      {}\n", env!("CARGO_PKG_VERSION"))));
        assert!(client.contains(" API version:  0.1.1\n"));
        let daemon = render_daemon_version("http:///k.sock", Some(&parse(INFO)));
        assert_eq!(
            daemon,
            "Daemon: kleened at http:///k.sock\n Version:      0.2.0\n API version:  0.1.1\n \
             OS/runtime:   linux/namespaces\n"
        );
        let old = render_daemon_version("http:///k.sock", None);
        assert!(old.contains("does not say"), "{old}");
    }

    #[tokio::test]
    async fn a_daemon_without_info_still_gets_a_version_answer() {
        let daemon = FakeDaemon::start(&[]);
        let conn = daemon.connection();
        version(&conn, Output { json: false }).await.unwrap();
        version(&conn, Output { json: true }).await.unwrap();
        assert_eq!(daemon.lines(), ["GET /info", "GET /info"]);
        let err = info(&conn, Output { json: false }).await.unwrap_err();
        assert!(err.to_string().contains("no GET /info"), "{err}");
        assert_eq!(err.exit_code(), 1);
    }

    #[tokio::test]
    async fn info_asks_the_daemon_once_for_a_table() {
        let daemon = FakeDaemon::start(&[("GET /info", 200, INFO)]);
        info(&daemon.connection(), Output { json: false })
            .await
            .unwrap();
        assert_eq!(daemon.lines(), ["GET /info"]);
    }

    #[tokio::test]
    async fn a_daemon_error_fails_version_after_the_client_part() {
        let daemon = FakeDaemon::start(&[("GET /info", 500, r#"{"message":"store failed"}"#)]);
        let err = version(&daemon.connection(), Output { json: false })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "store failed");
    }
}
