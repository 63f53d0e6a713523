//! `klee container ...` and the top-level `run`, `create`, `start`, `stop`, `restart`, `exec`.

use crate::output::printable;
use http::Method;
use kleene_api::{
    ContainerConfig, ContainerSummary, ExecConfig, ExecStartConfig, IdResponse, Info, NetworkDriver,
};
use time::OffsetDateTime;

use super::networks::{connect_endpoint, endpoint_config};
use super::{body, confirm, each, query_value, segment, Failure, Output};
use crate::attach::{self, Attach};
use crate::cli::{
    AttachArgs, ContainerOptions, CreateArgs, DriverArg, ExecArgs, RunArgs, StartArgs, UpdateArgs,
};
use crate::connection::{ClientError, Connection};
use crate::output::{since, table, truncate};

pub async fn list(conn: &Connection, all: bool, out: Output) -> Result<(), ClientError> {
    super::list(
        conn,
        &format!("/containers/list?all={all}"),
        out,
        |containers: Vec<ContainerSummary>| {
            let now = OffsetDateTime::now_utc();
            let rows = containers
                .into_iter()
                .map(|s| {
                    let image = if s.image_name.is_empty() {
                        s.container.image_id.clone()
                    } else {
                        format!("{}:{}", s.image_name, s.image_tag)
                    };
                    let status = if s.container.running {
                        "running"
                    } else {
                        "stopped"
                    };
                    vec![
                        s.container.id,
                        s.container.name.unwrap_or_default(),
                        image,
                        truncate(&s.container.cmd.join(" "), 32),
                        since(&s.container.created, now),
                        status.to_owned(),
                        s.jid.map(|j| j.to_string()).unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                &[
                    "CONTAINER ID",
                    "NAME",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "JID",
                ],
                rows,
            )
        },
    )
    .await
}

pub async fn inspect(conn: &Connection, identifier: &str) -> Result<(), ClientError> {
    super::inspect(
        conn,
        &format!("/containers/{}/inspect", segment(identifier)),
    )
    .await
}

/// Where a container's network driver comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DriverChoice {
    /// Given with `-l`, or `host` for a container without a network.
    Given(NetworkDriver),
    /// A network without `-l`: the daemon's default for its platform.
    DaemonDefault,
}

/// The Python client's defaults: no network means `host`; a network means a driver that can join
/// it, which the Python client fixes to `ipnet`; klee asks the daemon (`ipnet` on both platforms).
fn driver_choice(options: &ContainerOptions) -> DriverChoice {
    match (options.driver, &options.network) {
        (Some(driver), _) => DriverChoice::Given(match driver {
            DriverArg::Host => NetworkDriver::Host,
            DriverArg::Vnet => NetworkDriver::Vnet,
            DriverArg::Ipnet => NetworkDriver::Ipnet,
            DriverArg::Disabled => NetworkDriver::Disabled,
        }),
        (None, None) => DriverChoice::Given(NetworkDriver::Host),
        (None, Some(_)) => DriverChoice::DaemonDefault,
    }
}

/// The driver a container on a network gets from this daemon (`GET /info`); `ipnet`, the Kleened
/// API's own default, from a daemon that predates `/info`.
async fn default_network_driver(conn: &Connection) -> Result<NetworkDriver, ClientError> {
    match conn.call::<Info>(Method::GET, "/info", None).await {
        Ok(info) => Ok(info.default_network_driver),
        Err(ClientError::Api { status, .. }) if status == http::StatusCode::NOT_FOUND => {
            Ok(NetworkDriver::Ipnet)
        }
        Err(err) => Err(err),
    }
}

/// What the container options say, with `driver` as the network driver: user, environment,
/// mounts and jail parameters; the rest is left unset.
fn options_config(options: &ContainerOptions, driver: NetworkDriver) -> ContainerConfig {
    ContainerConfig {
        user: Some(options.user.clone().unwrap_or_default()),
        env: Some(options.env.clone()),
        mounts: Some(options.mount.clone()),
        jail_param: Some(options.jail_param.clone()),
        network_driver: Some(driver),
        ..ContainerConfig::default()
    }
}

/// The configuration the container options give, for a container (`create`, `run`) or a build
/// container (`build`); asks the daemon for its default driver when a network is given without
/// one.
pub(super) async fn configure(
    conn: &Connection,
    options: &ContainerOptions,
) -> Result<ContainerConfig, ClientError> {
    let driver = match driver_choice(options) {
        DriverChoice::Given(driver) => driver,
        DriverChoice::DaemonDefault => default_network_driver(conn).await?,
    };
    Ok(options_config(options, driver))
}

/// The body of `/containers/create`: the container options' configuration and the rest of
/// `create`'s arguments.
fn container_config(args: &CreateArgs, options: ContainerConfig) -> ContainerConfig {
    ContainerConfig {
        name: args.name.clone(),
        image: Some(args.image.clone()),
        cmd: Some(args.cmd.clone()),
        public_ports: Some(args.publish.clone()),
        restart_policy: Some(args.restart.policy),
        restart_max_retries: args.restart.max_retries,
        persist: Some(args.persist),
        memory: args.limits.memory.clone(),
        pids_limit: args.limits.pids_limit,
        cpus: args.limits.cpus.clone(),
        // The last one given counts, as with any repeated option.
        storage_size: args.storage_opt.last().cloned(),
        ..options
    }
}

/// Creates a container and, with `-n`, connects it to the network; answers its ID. A container
/// that cannot be connected is removed again, so a failed command leaves nothing behind.
async fn create_container(conn: &Connection, args: &CreateArgs) -> Result<String, ClientError> {
    let config = container_config(args, configure(conn, &args.container).await?);
    let created: IdResponse = conn
        .call(Method::POST, "/containers/create", body(&config)?)
        .await?;
    let id = created.id;
    let options = &args.container;
    let Some(network) = &options.network else {
        return Ok(id);
    };
    let endpoint = endpoint_config(network, &id, options.ip.as_deref(), options.ip6.as_deref());
    if let Err(err) = connect_endpoint(conn, &endpoint).await {
        let err = match err {
            ClientError::Api { message, .. } => {
                eprintln!(
                    "klee: could not connect the container to network {network}: {}",
                    printable(&message)
                );
                ClientError::Reported
            }
            other => other,
        };
        let path = format!("/containers/{}", segment(&id));
        if let Err(remove_err) = conn.call::<IdResponse>(Method::DELETE, &path, None).await {
            eprintln!(
                "klee: could not remove container {id} again: {}",
                printable(&remove_err.to_string())
            );
        }
        return Err(err);
    }
    Ok(id)
}

pub async fn create(conn: &Connection, args: &CreateArgs) -> Result<(), ClientError> {
    println!("{}", printable(&create_container(conn, args).await?));
    Ok(())
}

/// Creates an exec instance and starts it; answers the process's exit code (0 when detached).
async fn start_exec(
    conn: &Connection,
    exec: ExecConfig,
    attach_args: AttachArgs,
    start_container: bool,
) -> Result<i32, ClientError> {
    let created: IdResponse = conn
        .call(Method::POST, "/exec/create", body(&exec)?)
        .await?;
    let start = ExecStartConfig {
        exec_id: created.id,
        attach: !attach_args.detach,
        start_container,
        // A terminal starts with this terminal's size and follows it; end of input is said.
        tty_size: exec.tty.then(attach::terminal_size).flatten(),
        control: !attach_args.detach,
    };
    let mode = if attach_args.detach {
        Attach::Detached
    } else if attach_args.interactive {
        Attach::Interactive {
            raw: attach_args.tty,
        }
    } else {
        Attach::Output
    };
    attach::run(conn, &start, mode).await
}

pub async fn run(conn: &Connection, args: &RunArgs) -> Result<i32, ClientError> {
    let id = create_container(conn, &args.create).await?;
    let exec = ExecConfig {
        container_id: id.clone(),
        cmd: vec![],
        env: vec![],
        user: String::new(),
        tty: args.attach.tty,
    };
    let result = start_exec(conn, exec, args.attach, true).await;
    if args.attach.detach {
        if result.is_ok() {
            println!("{}", printable(&id));
        }
        return result;
    }
    if args.rm {
        // The container stopped with its process; remove it whatever the outcome.
        let path = format!("/containers/{}", segment(&id));
        if let Err(err) = conn.call::<IdResponse>(Method::DELETE, &path, None).await {
            eprintln!(
                "klee: could not remove container {id}: {}",
                printable(&err.to_string())
            );
        }
    }
    result
}

/// Starts one container attached (answering its process's exit code), or any number detached.
/// As the Python client does, several are started only with `-d`, and a container that fails
/// to start does not keep the others from starting.
pub async fn start(conn: &Connection, args: &StartArgs) -> Result<i32, ClientError> {
    let start_one = |container: String| async move {
        let exec = ExecConfig {
            container_id: container,
            cmd: vec![],
            env: vec![],
            user: String::new(),
            tty: args.attach.tty,
        };
        start_exec(conn, exec, args.attach, true).await
    };
    match args.containers.as_slice() {
        [container] if !args.attach.detach => start_one(container.clone()).await,
        containers if args.attach.detach => {
            each(containers, Failure::GoOn, |c| async move {
                start_one(c.clone()).await?;
                Ok(IdResponse { id: c })
            })
            .await?;
            Ok(0)
        }
        _ => Err(ClientError::Usage(
            "only one container can be started when attaching: start several with -d".into(),
        )),
    }
}

pub async fn exec(conn: &Connection, args: &ExecArgs) -> Result<i32, ClientError> {
    let exec = ExecConfig {
        container_id: args.container.clone(),
        cmd: args.cmd.clone(),
        env: args.env.clone(),
        user: args.user.clone().unwrap_or_default(),
        tty: args.attach.tty,
    };
    start_exec(conn, exec, args.attach, false).await
}

pub async fn stop(conn: &Connection, containers: &[String]) -> Result<(), ClientError> {
    each(containers, Failure::Stop, |c| async move {
        conn.call::<IdResponse>(
            Method::POST,
            &format!("/containers/{}/stop", segment(&c)),
            None,
        )
        .await
    })
    .await
}

pub async fn restart(conn: &Connection, containers: &[String]) -> Result<(), ClientError> {
    each(containers, Failure::Stop, |c| async move {
        let path = format!("/containers/{}/stop", segment(&c));
        match conn.call::<IdResponse>(Method::POST, &path, None).await {
            Ok(_) => {}
            Err(ClientError::Api { message, .. }) if message == "container not running" => {}
            Err(err) => return Err(err),
        }
        let exec = ExecConfig {
            container_id: c.clone(),
            cmd: vec![],
            env: vec![],
            user: String::new(),
            tty: false,
        };
        let detached = AttachArgs {
            detach: true,
            interactive: false,
            tty: false,
        };
        start_exec(conn, exec, detached, true).await?;
        Ok(IdResponse { id: c })
    })
    .await
}

pub async fn remove(
    conn: &Connection,
    containers: &[String],
    force: bool,
) -> Result<(), ClientError> {
    each(containers, Failure::Stop, |c| async move {
        if force {
            let path = format!("/containers/{}/stop", segment(&c));
            match conn.call::<IdResponse>(Method::POST, &path, None).await {
                Ok(_) => {}
                Err(ClientError::Api { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        conn.call::<IdResponse>(
            Method::DELETE,
            &format!("/containers/{}", segment(&c)),
            None,
        )
        .await
    })
    .await
}

pub async fn rename(conn: &Connection, container: &str, name: &str) -> Result<(), ClientError> {
    let config = ContainerConfig {
        name: Some(name.to_owned()),
        ..ContainerConfig::default()
    };
    let path = format!("/containers/{}/update", segment(container));
    let answer: IdResponse = conn.call(Method::POST, &path, body(&config)?).await?;
    println!("{}", printable(&answer.id));
    Ok(())
}

pub async fn update(conn: &Connection, args: &UpdateArgs) -> Result<(), ClientError> {
    let config = ContainerConfig {
        name: args.name.clone(),
        user: args.user.clone(),
        env: (!args.env.is_empty()).then(|| args.env.clone()),
        jail_param: (!args.jail_param.is_empty()).then(|| args.jail_param.clone()),
        cmd: (!args.cmd.is_empty()).then(|| args.cmd.clone()),
        restart_policy: args.restart.map(|r| r.policy),
        // A policy given without a bound removes the bound.
        restart_max_retries: args.restart.map(|r| r.max_retries.unwrap_or(0)),
        persist: args.persist,
        memory: args.limits.memory.clone(),
        pids_limit: args.limits.pids_limit,
        cpus: args.limits.cpus.clone(),
        ..ContainerConfig::default()
    };
    let path = format!("/containers/{}/update", segment(&args.container));
    let answer: IdResponse = conn.call(Method::POST, &path, body(&config)?).await?;
    println!("{}", printable(&answer.id));
    Ok(())
}

pub async fn prune(conn: &Connection, force: bool) -> Result<(), ClientError> {
    if !force && !confirm("This removes every stopped container that is not marked persist.")? {
        return Ok(());
    }
    let removed: Vec<String> = conn.call(Method::POST, "/containers/prune", None).await?;
    for id in removed {
        println!("{}", printable(&id));
    }
    Ok(())
}

/// `klee logs`: the container's output as kleened kept it, streamed to stdout.
pub async fn logs(conn: &Connection, args: &crate::cli::LogsArgs) -> Result<(), ClientError> {
    let mut query = vec![];
    if args.follow {
        query.push("follow=true".to_owned());
    }
    if args.timestamps {
        query.push("timestamps=true".to_owned());
    }
    if let Some(tail) = args.tail {
        query.push(format!("tail={tail}"));
    }
    if let Some(since) = &args.since {
        query.push(format!("since={}", query_value(since)));
    }
    let mut path = format!("/containers/{}/logs", segment(&args.container));
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    conn.stream_to(&path, &mut std::io::stdout().lock()).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::fake_daemon::{FakeDaemon, INFO_VNET};

    fn create_args(argv: &[&str]) -> CreateArgs {
        let cli = Cli::try_parse_from(["klee", "create"].iter().chain(argv)).unwrap();
        let Command::Create(args) = cli.command else {
            panic!("not create")
        };
        args
    }

    /// The body of `/containers/create` for `args`, with `driver`.
    fn config_of(args: &CreateArgs, driver: NetworkDriver) -> ContainerConfig {
        container_config(args, options_config(&args.container, driver))
    }

    const CREATED: (&str, u16, &str) = ("POST /containers/create", 201, r#"{"id":"c0ffee"}"#);
    const CONNECTED: (&str, u16, &str) = ("POST /networks/connect", 204, "");

    #[test]
    fn the_driver_is_host_without_a_network_and_the_daemons_with_one() {
        let choice = |argv: &[&str]| driver_choice(&create_args(argv).container);
        assert_eq!(choice(&["base"]), DriverChoice::Given(NetworkDriver::Host));
        assert_eq!(choice(&["-n", "net", "base"]), DriverChoice::DaemonDefault);
        assert_eq!(
            choice(&["-n", "net", "-l", "vnet", "base"]),
            DriverChoice::Given(NetworkDriver::Vnet)
        );
        assert_eq!(
            choice(&["--driver", "disabled", "base"]),
            DriverChoice::Given(NetworkDriver::Disabled)
        );
        assert_eq!(
            choice(&["-l", "ipnet", "--network", "net", "base"]),
            DriverChoice::Given(NetworkDriver::Ipnet)
        );
    }

    #[test]
    fn the_storage_size_goes_into_the_create_body_and_other_options_are_refused() {
        let args = create_args(&["--storage-opt", "size=10g", "base"]);
        let config = config_of(&args, NetworkDriver::Host);
        assert_eq!(config.storage_size.as_deref(), Some("10g"));
        assert_eq!(
            serde_json::to_value(&config).unwrap()["storage_size"],
            json!("10g")
        );
        let args = create_args(&["base"]);
        assert_eq!(config_of(&args, NetworkDriver::Host).storage_size, None);
        for bad in ["size=", "quota=1g", "10g"] {
            let err =
                Cli::try_parse_from(["klee", "create", "--storage-opt", bad, "base"]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains("size"), "{bad}: {err}");
        }
    }

    #[test]
    fn published_ports_go_into_the_create_body() {
        let args = create_args(&["-l", "vnet", "-p", "8080:80", "-p", "em0:53:53/udp", "base"]);
        let config = config_of(&args, NetworkDriver::Vnet);
        assert_eq!(
            serde_json::to_value(&config.public_ports).unwrap(),
            json!([
                {"interfaces": [], "host_port": "8080", "container_port": "80", "protocol": "tcp"},
                {"interfaces": ["em0"], "host_port": "53", "container_port": "53", "protocol": "udp"},
            ])
        );
        let config = config_of(&create_args(&["base"]), NetworkDriver::Host);
        assert_eq!(config.public_ports, Some(vec![]));
    }

    #[test]
    fn bad_network_options_are_usage_errors() {
        let exit = |argv: &[&str]| {
            Cli::try_parse_from(["klee", "run"].iter().chain(argv))
                .unwrap_err()
                .exit_code()
        };
        assert_eq!(exit(&["-p", "1:2:3:4", "base"]), 2);
        assert_eq!(exit(&["-p", "80/sctp", "base"]), 2);
        assert_eq!(exit(&["--ip", "10.0.0.2", "base"]), 2, "--ip needs -n");
        assert_eq!(exit(&["--ip6", "fd00::2", "base"]), 2, "--ip6 needs -n");
        assert_eq!(exit(&["-l", "bridge", "base"]), 2);
    }

    #[test]
    fn mounts_go_into_the_create_body_in_order() {
        let args = create_args(&["-m", "data:/data", "--mount", "/srv/www:/www:ro", "base"]);
        let config = config_of(&args, NetworkDriver::Host);
        assert_eq!(
            serde_json::to_value(&config.mounts).unwrap(),
            json!([
                {"type": "volume", "source": "data", "destination": "/data", "read_only": false},
                {"type": "nullfs", "source": "/srv/www", "destination": "/www", "read_only": true},
            ])
        );
        // None given: `[]`, as the Python client sends.
        let config = config_of(&create_args(&["base"]), NetworkDriver::Host);
        assert_eq!(config.mounts, Some(vec![]));
    }

    #[test]
    fn a_bad_mount_is_a_usage_error_naming_it() {
        let cases: [&[&str]; 4] = [
            &["create", "-m", "data", "base"],
            &["run", "-m", "data:/data:rx", "base"],
            &["container", "create", "--mount=a:/b:ro:x", "base"],
            &["container", "run", "-m", ":/data", "base"],
        ];
        for argv in cases {
            let argv: Vec<&str> = std::iter::once("klee")
                .chain(argv.iter().copied())
                .collect();
            let err = Cli::try_parse_from(&argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
            let text = err.to_string();
            assert!(text.contains("--mount"), "{argv:?}: {text}");
            assert!(
                text.contains("SOURCE:DESTINATION[:OPTIONS]")
                    || text.contains("ro, rw, suid or dev"),
                "{argv:?}: {text}"
            );
        }
    }

    /// `-m data:/var/db -m /srv/www:/usr/local/www:ro` as the daemon receives them.
    fn two_mounts() -> serde_json::Value {
        json!([
            {"type": "volume", "source": "data", "destination": "/var/db", "read_only": false},
            {"type": "nullfs", "source": "/srv/www", "destination": "/usr/local/www",
             "read_only": true},
        ])
    }

    #[tokio::test]
    async fn create_with_two_mounts_sends_them_with_the_config() {
        let daemon = FakeDaemon::start(&[CREATED]);
        let cli = Cli::try_parse_from([
            "klee",
            "container",
            "create",
            "-m",
            "data:/var/db",
            "-m",
            "/srv/www:/usr/local/www:ro",
            "base",
        ])
        .unwrap();
        let Command::Container(crate::cli::ContainerCommand::Create(args)) = cli.command else {
            panic!("not container create")
        };
        create(&daemon.connection(), &args).await.unwrap();
        assert_eq!(daemon.lines(), ["POST /containers/create"]);
        let body = daemon.body("POST /containers/create");
        assert_eq!(body["mounts"], two_mounts());
        assert_eq!(body["image"], "base");
    }

    #[tokio::test]
    async fn run_with_two_mounts_creates_the_container_with_them_then_starts_it() {
        // No /exec/create scripted: the run ends there, after the create it is about.
        let daemon = FakeDaemon::start(&[CREATED]);
        let cli = Cli::try_parse_from([
            "klee",
            "run",
            "-d",
            "--mount",
            "data:/var/db:rw",
            "-m",
            "/srv/www:/usr/local/www:ro",
            "base",
            "httpd",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let err = run(&daemon.connection(), &args).await.unwrap_err();
        assert_eq!(err.to_string(), "not found");
        assert_eq!(
            daemon.lines(),
            ["POST /containers/create", "POST /exec/create"]
        );
        let body = daemon.body("POST /containers/create");
        assert_eq!(body["mounts"], two_mounts());
        assert_eq!(body["cmd"], json!(["httpd"]));
    }

    #[tokio::test]
    async fn without_a_network_only_the_container_is_created() {
        let daemon = FakeDaemon::start(&[CREATED]);
        let id = create_container(&daemon.connection(), &create_args(&["base", "echo", "hi"]))
            .await
            .unwrap();
        assert_eq!(id, "c0ffee");
        assert_eq!(daemon.lines(), ["POST /containers/create"]);
        let body = daemon.body("POST /containers/create");
        assert_eq!(body["network_driver"], "host");
        assert_eq!(body["cmd"], json!(["echo", "hi"]));
    }

    #[tokio::test]
    async fn a_network_without_a_driver_takes_the_daemons_default_then_connects() {
        let daemon = FakeDaemon::start(&[INFO_VNET, CREATED, CONNECTED]);
        let args = create_args(&["-n", "net", "base"]);
        let id = create_container(&daemon.connection(), &args).await.unwrap();
        assert_eq!(id, "c0ffee");
        assert_eq!(
            daemon.lines(),
            [
                "GET /info",
                "POST /containers/create",
                "POST /networks/connect"
            ]
        );
        assert_eq!(
            daemon.body("POST /containers/create")["network_driver"],
            "vnet"
        );
        assert_eq!(
            daemon.body("POST /networks/connect"),
            json!({"container": "c0ffee", "network": "net", "ip_address": "<auto>",
                   "ip_address6": "<auto>"})
        );
    }

    #[tokio::test]
    async fn a_daemon_without_info_means_ipnet() {
        let daemon = FakeDaemon::start(&[CREATED, CONNECTED]);
        let args = create_args(&["-n", "net", "base"]);
        create_container(&daemon.connection(), &args).await.unwrap();
        assert_eq!(
            daemon.body("POST /containers/create")["network_driver"],
            "ipnet"
        );
    }

    #[tokio::test]
    async fn a_given_driver_and_addresses_need_no_info() {
        let daemon = FakeDaemon::start(&[CREATED, CONNECTED]);
        let args = create_args(&["-l", "vnet", "-n", "net", "--ip", "10.13.0.5", "base"]);
        create_container(&daemon.connection(), &args).await.unwrap();
        assert_eq!(
            daemon.lines(),
            ["POST /containers/create", "POST /networks/connect"]
        );
        assert_eq!(
            daemon.body("POST /containers/create")["network_driver"],
            "vnet"
        );
        let endpoint = daemon.body("POST /networks/connect");
        assert_eq!(endpoint["ip_address"], "10.13.0.5");
        assert_eq!(endpoint["ip_address6"], "<auto>");
    }

    #[tokio::test]
    async fn a_failed_connect_removes_the_container_again_and_exits_1() {
        let daemon = FakeDaemon::start(&[
            CREATED,
            (
                "POST /networks/connect",
                409,
                r#"{"message":"containers with the 'host' network-driver cannot connect to networks."}"#,
            ),
            ("DELETE /containers/c0ffee", 200, r#"{"id":"c0ffee"}"#),
        ]);
        let args = create_args(&["-l", "host", "-n", "net", "base"]);
        let err = create_container(&daemon.connection(), &args)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Reported), "{err:?}");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(
            daemon.lines(),
            [
                "POST /containers/create",
                "POST /networks/connect",
                "DELETE /containers/c0ffee"
            ]
        );
    }

    #[tokio::test]
    async fn stop_rm_and_restart_stop_at_the_first_failure() {
        let daemon = FakeDaemon::start(&[
            ("POST /containers/a/stop", 200, r#"{"id":"a1a1a1a1a1a1"}"#),
            ("DELETE /containers/a", 200, r#"{"id":"a1a1a1a1a1a1"}"#),
        ]);
        let conn = daemon.connection();
        let names = ["a", "nope", "c"].map(str::to_owned);
        let err = stop(&conn, &names).await.unwrap_err();
        assert!(matches!(err, ClientError::Reported), "{err:?}");
        assert_eq!(err.exit_code(), 1);
        let err = remove(&conn, &names, false).await.unwrap_err();
        assert!(matches!(err, ClientError::Reported), "{err:?}");
        let err = restart(&conn, &names[1..]).await.unwrap_err();
        assert!(matches!(err, ClientError::Reported), "{err:?}");
        assert_eq!(
            daemon.lines(),
            [
                "POST /containers/a/stop",
                "POST /containers/nope/stop",
                "DELETE /containers/a",
                "DELETE /containers/nope",
                "POST /containers/nope/stop",
            ],
            "c is never tried"
        );
    }

    #[tokio::test]
    async fn several_containers_start_only_detached() {
        let daemon = FakeDaemon::start(&[]);
        let cli = Cli::try_parse_from(["klee", "start", "a", "b"]).unwrap();
        let Command::Start(args) = cli.command else {
            panic!("not start")
        };
        let err = start(&daemon.connection(), &args).await.unwrap_err();
        assert!(matches!(err, ClientError::Usage(_)), "{err:?}");
        assert_eq!(err.exit_code(), 2);
        assert!(daemon.lines().is_empty(), "nothing was asked");
    }

    #[tokio::test]
    async fn a_refused_create_connects_nothing() {
        let daemon = FakeDaemon::start(&[
            INFO_VNET,
            (
                "POST /containers/create",
                404,
                r#"{"message":"no such image 'nope'"}"#,
            ),
        ]);
        let args = create_args(&["-n", "net", "nope"]);
        let err = create_container(&daemon.connection(), &args)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "no such image 'nope'");
        assert_eq!(daemon.lines(), ["GET /info", "POST /containers/create"]);
    }
}
