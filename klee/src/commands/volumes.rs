//! `klee volume ...`

use crate::output::printable;
use http::Method;
use kleene_api::{IdResponse, Volume, VolumeConfig};
use time::OffsetDateTime;

use super::{body, confirm, each, segment, Failure, Output};
use crate::cli::VolumeCreateArgs;
use crate::connection::{ClientError, Connection};
use crate::output::{since, table};

/// The body of `volume create`: `size` only when given, so a daemon that predates it (or the
/// reference's) sees exactly the Python client's `{"name": ...}`.
fn volume_config(args: &VolumeCreateArgs) -> VolumeConfig {
    VolumeConfig {
        name: args.name.clone(),
        size: args.size.clone(),
    }
}

/// Creates a volume and prints its name (the daemon's `{"id": name}`).
pub async fn create(conn: &Connection, args: &VolumeCreateArgs) -> Result<(), ClientError> {
    let created: IdResponse = conn
        .call(Method::POST, "/volumes/create", body(&volume_config(args))?)
        .await?;
    println!("{}", printable(&created.id));
    Ok(())
}

fn render(volumes: Vec<Volume>, now: OffsetDateTime) -> String {
    let rows = volumes
        .into_iter()
        .map(|v| vec![v.name, v.mountpoint, since(&v.created, now)])
        .collect();
    table(&["VOLUME NAME", "MOUNTPOINT", "CREATED"], rows)
}

pub async fn list(conn: &Connection, out: Output) -> Result<(), ClientError> {
    super::list(conn, "/volumes/list", out, |volumes: Vec<Volume>| {
        render(volumes, OffsetDateTime::now_utc())
    })
    .await
}

pub async fn inspect(conn: &Connection, name: &str) -> Result<(), ClientError> {
    super::inspect(conn, &format!("/volumes/{}/inspect", segment(name))).await
}

/// Removes volumes in order, printing each name; the first failure ends the command, as in the
/// Python client, but with a non-zero exit and the names not tried.
pub async fn remove(conn: &Connection, volumes: &[String]) -> Result<(), ClientError> {
    each(volumes, Failure::Stop, |volume| async move {
        let path = format!("/volumes/{}", segment(&volume));
        conn.call::<IdResponse>(Method::DELETE, &path, None).await
    })
    .await
}

pub async fn prune(conn: &Connection, force: bool) -> Result<(), ClientError> {
    if !force && !confirm("This removes every volume no container mounts.")? {
        return Ok(());
    }
    let removed: Vec<String> = conn.call(Method::POST, "/volumes/prune", None).await?;
    for name in removed {
        println!("{}", printable(&name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::cli::{Cli, Command, VolumeArg, VolumeCommand, VolumesArg};
    use crate::fake_daemon::FakeDaemon;

    fn create_args(argv: &[&str]) -> VolumeCreateArgs {
        let cli = Cli::try_parse_from(["klee", "volume", "create"].iter().chain(argv)).unwrap();
        let Command::Volume(VolumeCommand::Create(args)) = cli.command else {
            panic!("not volume create")
        };
        args
    }

    #[test]
    fn volume_commands_and_their_shortcuts_parse() {
        let parse = |argv: &[&str]| {
            Cli::try_parse_from(std::iter::once("klee").chain(argv.iter().copied()))
                .map(|cli| cli.command)
        };
        assert!(matches!(
            parse(&["rmv", "a", "b"]).unwrap(),
            Command::Rmv(VolumesArg { volumes }) if volumes == ["a", "b"]
        ));
        assert!(matches!(
            parse(&["volume", "rm", "a"]).unwrap(),
            Command::Volume(VolumeCommand::Rm(VolumesArg { volumes })) if volumes == ["a"]
        ));
        assert!(parse(&["rmv"]).is_err(), "a volume is required");
        assert!(parse(&["volume", "create"]).is_err(), "a name is required");
        assert!(matches!(
            parse(&["isv", "data"]).unwrap(),
            Command::Isv(VolumeArg { name }) if name == "data"
        ));
        assert!(matches!(parse(&["lsv"]).unwrap(), Command::Lsv));
        assert!(matches!(
            parse(&["volume", "list"]).unwrap(),
            Command::Volume(VolumeCommand::Ls)
        ));
        assert!(matches!(
            parse(&["volume", "prune", "--force"]).unwrap(),
            Command::Volume(VolumeCommand::Prune(crate::cli::ForceArg { force: true }))
        ));
        let args = create_args(&["-s", "500M", "data"]);
        assert_eq!(
            (args.size.as_deref(), args.name.as_str()),
            (Some("500M"), "data")
        );
    }

    #[test]
    fn the_table_shows_name_mountpoint_and_age() {
        let volume = Volume {
            name: "data".into(),
            dataset: "zroot/kleene/volumes/data".into(),
            mountpoint: "/zroot/kleene/volumes/data".into(),
            created: "2024-03-01T09:00:00Z".into(),
        };
        let text = render(vec![volume], datetime!(2024-03-01 12:00:00 UTC));
        let lines: Vec<_> = text.lines().collect();
        let header: Vec<_> = lines[0]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(header, ["VOLUME NAME", "MOUNTPOINT", "CREATED"]);
        let row: Vec<_> = lines[1]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(row, ["data", "/zroot/kleene/volumes/data", "3 hours ago"]);
    }

    #[tokio::test]
    async fn create_sends_the_name_and_the_size_only_when_given() {
        let daemon = FakeDaemon::start(&[("POST /volumes/create", 201, r#"{"id":"data"}"#)]);
        let conn = daemon.connection();
        create(&conn, &create_args(&["data"])).await.unwrap();
        create(&conn, &create_args(&["--size", "10G", "data"]))
            .await
            .unwrap();
        let requests = daemon.requests();
        let lines: Vec<_> = requests.iter().map(|r| r.line.as_str()).collect();
        assert_eq!(lines, ["POST /volumes/create", "POST /volumes/create"]);
        assert_eq!(requests[0].body, json!({"name": "data"}));
        assert_eq!(requests[1].body, json!({"name": "data", "size": "10G"}));
    }

    #[tokio::test]
    async fn a_refused_create_is_the_daemons_message_and_exit_1() {
        let daemon = FakeDaemon::start(&[(
            "POST /volumes/create",
            422,
            r#"{"message":"invalid volume size 'lots'"}"#,
        )]);
        let err = create(&daemon.connection(), &create_args(&["-s", "lots", "data"]))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "invalid volume size 'lots'");
        assert_eq!(err.exit_code(), 1);
    }

    #[tokio::test]
    async fn ls_and_inspect_get_their_paths() {
        let daemon = FakeDaemon::start(&[
            (
                "GET /volumes/list",
                200,
                r#"[{"name":"data","dataset":"p/k/volumes/data","mountpoint":"/p/k/volumes/data",
                     "created":"2024-03-01T09:00:00Z"}]"#,
            ),
            (
                "GET /volumes/my%20data/inspect",
                200,
                r#"{"volume":{"name":"my data","dataset":"d","mountpoint":"/d",
                              "created":"2024-03-01T09:00:00Z"},"mountpoints":[]}"#,
            ),
        ]);
        let conn = daemon.connection();
        list(&conn, Output { json: false }).await.unwrap();
        list(&conn, Output { json: true }).await.unwrap();
        inspect(&conn, "my data").await.unwrap();
        let err = inspect(&conn, "nope").await.unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(
            daemon.lines(),
            [
                "GET /volumes/list",
                "GET /volumes/list",
                "GET /volumes/my%20data/inspect",
                "GET /volumes/nope/inspect",
            ]
        );
        assert!(daemon
            .requests()
            .iter()
            .all(|r| r.body == serde_json::Value::Null));
    }

    #[tokio::test]
    async fn rm_removes_each_in_order_and_stops_at_the_first_failure() {
        let daemon = FakeDaemon::start(&[
            ("DELETE /volumes/a", 200, r#"{"id":"a"}"#),
            ("DELETE /volumes/b", 200, r#"{"id":"b"}"#),
        ]);
        let conn = daemon.connection();
        remove(&conn, &["a", "b"].map(String::from)).await.unwrap();
        let err = remove(&conn, &["a", "nope", "b"].map(String::from))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Reported), "{err:?}");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(
            daemon.lines(),
            [
                "DELETE /volumes/a",
                "DELETE /volumes/b",
                "DELETE /volumes/a",
                "DELETE /volumes/nope",
            ],
            "b is not tried after nope failed"
        );
    }

    #[tokio::test]
    async fn prune_with_force_asks_nothing_and_posts_without_a_body() {
        let daemon = FakeDaemon::start(&[("POST /volumes/prune", 200, r#"["a","b"]"#)]);
        prune(&daemon.connection(), true).await.unwrap();
        assert_eq!(daemon.lines(), ["POST /volumes/prune"]);
        assert_eq!(daemon.body("POST /volumes/prune"), serde_json::Value::Null);
    }
}
