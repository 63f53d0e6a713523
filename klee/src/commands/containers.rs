//! `klee container ...` and the top-level `run`, `create`, `start`, `stop`, `restart`, `exec`.

use http::Method;
use kleene_api::{
    ContainerConfig, ContainerSummary, ExecConfig, ExecStartConfig, IdResponse, NetworkDriver,
    RestartPolicy,
};
use time::OffsetDateTime;

use super::{confirm, segment, Output};
use crate::attach::{self, Attach};
use crate::cli::{
    AttachArgs, CreateArgs, DriverArg, ExecArgs, RestartArg, RunArgs, StartArgs, UpdateArgs,
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

fn restart_policy(arg: RestartArg) -> RestartPolicy {
    match arg {
        RestartArg::No => RestartPolicy::No,
        RestartArg::OnStartup => RestartPolicy::OnStartup,
    }
}

fn body<T: serde::Serialize>(value: &T) -> Result<Option<Vec<u8>>, ClientError> {
    serde_json::to_vec(value)
        .map(Some)
        .map_err(|e| ClientError::Settings(format!("cannot encode the request: {e}")))
}

/// Creates a container; answers its ID.
async fn create_container(conn: &Connection, args: &CreateArgs) -> Result<String, ClientError> {
    let config = ContainerConfig {
        name: args.name.clone(),
        image: Some(args.image.clone()),
        cmd: Some(args.cmd.clone()),
        user: Some(args.user.clone().unwrap_or_default()),
        env: Some(args.env.clone()),
        mounts: Some(vec![]),
        jail_param: Some(args.jail_param.clone()),
        network_driver: Some(match args.driver {
            DriverArg::Host => NetworkDriver::Host,
            DriverArg::Vnet => NetworkDriver::Vnet,
            DriverArg::Ipnet => NetworkDriver::Ipnet,
            DriverArg::Disabled => NetworkDriver::Disabled,
        }),
        public_ports: Some(vec![]),
        restart_policy: Some(restart_policy(args.restart)),
        persist: Some(args.persist),
    };
    let created: IdResponse = conn
        .call(Method::POST, "/containers/create", body(&config)?)
        .await?;
    Ok(created.id)
}

pub async fn create(conn: &Connection, args: &CreateArgs) -> Result<(), ClientError> {
    println!("{}", create_container(conn, args).await?);
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
            println!("{id}");
        }
        return result;
    }
    if args.rm {
        // The container stopped with its process; remove it whatever the outcome.
        let path = format!("/containers/{}", segment(&id));
        if let Err(err) = conn.call::<IdResponse>(Method::DELETE, &path, None).await {
            eprintln!("klee: could not remove container {id}: {err}");
        }
    }
    result
}

pub async fn start(conn: &Connection, args: &StartArgs) -> Result<i32, ClientError> {
    let exec = ExecConfig {
        container_id: args.container.clone(),
        cmd: vec![],
        env: vec![],
        user: String::new(),
        tty: args.attach.tty,
    };
    start_exec(conn, exec, args.attach, true).await
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
    each(containers, |c| async move {
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
    each(containers, |c| async move {
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
    each(containers, |c| async move {
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
    println!("{}", answer.id);
    Ok(())
}

pub async fn update(conn: &Connection, args: &UpdateArgs) -> Result<(), ClientError> {
    let config = ContainerConfig {
        name: args.name.clone(),
        user: args.user.clone(),
        env: (!args.env.is_empty()).then(|| args.env.clone()),
        jail_param: (!args.jail_param.is_empty()).then(|| args.jail_param.clone()),
        cmd: (!args.cmd.is_empty()).then(|| args.cmd.clone()),
        restart_policy: args.restart.map(restart_policy),
        persist: args.persist,
        ..ContainerConfig::default()
    };
    let path = format!("/containers/{}/update", segment(&args.container));
    let answer: IdResponse = conn.call(Method::POST, &path, body(&config)?).await?;
    println!("{}", answer.id);
    Ok(())
}

pub async fn prune(conn: &Connection, force: bool) -> Result<(), ClientError> {
    if !force && !confirm("This removes every stopped container that is not marked persist.")? {
        return Ok(());
    }
    let removed: Vec<String> = conn.call(Method::POST, "/containers/prune", None).await?;
    for id in removed {
        println!("{id}");
    }
    Ok(())
}

/// Runs `action` for each container, printing the IDs that worked and the errors of the others;
/// fails (already reported) when any failed.
async fn each<F, Fut>(containers: &[String], action: F) -> Result<(), ClientError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<IdResponse, ClientError>>,
{
    let mut failed = false;
    for container in containers {
        match action(container.clone()).await {
            Ok(answer) => println!("{}", answer.id),
            Err(err @ ClientError::Unreachable { .. }) => return Err(err),
            Err(err) => {
                eprintln!("klee: {container}: {}", err.to_string().trim_end());
                failed = true;
            }
        }
    }
    if failed {
        Err(ClientError::Reported)
    } else {
        Ok(())
    }
}
