//! What each command does: build the request, call the daemon, render the answer.

mod containers;
mod images;
mod networks;
mod system;
mod volumes;

use crate::output::printable;
use http::Method;
use kleene_api::IdResponse;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;

use crate::cli::{Command, ContainerCommand, ImageCommand, NetworkCommand, VolumeCommand};
use crate::connection::{ClientError, Connection};

/// Output options shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Print the daemon's JSON instead of tables.
    pub json: bool,
}

/// Runs one command; answers the exit code (the process's for `run`, `start` and `exec`, else 0).
pub async fn run(command: Command, conn: &Connection, out: Output) -> Result<i32, ClientError> {
    let done = |result: Result<(), ClientError>| result.map(|()| 0);
    match command {
        Command::Run(args) | Command::Container(ContainerCommand::Run(args)) => {
            containers::run(conn, &args).await
        }
        Command::Start(args) | Command::Container(ContainerCommand::Start(args)) => {
            containers::start(conn, &args).await
        }
        Command::Exec(args) | Command::Container(ContainerCommand::Exec(args)) => {
            containers::exec(conn, &args).await
        }
        Command::Create(args) | Command::Container(ContainerCommand::Create(args)) => {
            done(containers::create(conn, &args).await)
        }
        Command::Stop(args) | Command::Container(ContainerCommand::Stop(args)) => {
            done(containers::stop(conn, &args.containers).await)
        }
        Command::Restart(args) | Command::Container(ContainerCommand::Restart(args)) => {
            done(containers::restart(conn, &args.containers).await)
        }
        Command::Rmc(args) | Command::Container(ContainerCommand::Rm(args)) => {
            done(containers::remove(conn, &args.containers, args.force).await)
        }
        Command::Logs(args) | Command::Container(ContainerCommand::Logs(args)) => {
            done(containers::logs(conn, &args).await)
        }
        Command::Rename(args) | Command::Container(ContainerCommand::Rename(args)) => {
            done(containers::rename(conn, &args.container, &args.name).await)
        }
        Command::Container(ContainerCommand::Update(args)) => {
            done(containers::update(conn, &args).await)
        }
        Command::Container(ContainerCommand::Prune(args)) => {
            done(containers::prune(conn, args.force).await)
        }
        Command::Image(ImageCommand::Ls) | Command::Lsi => done(images::list(conn, out).await),
        Command::Image(ImageCommand::Inspect(arg)) | Command::Isi(arg) => {
            done(images::inspect(conn, &arg.name).await)
        }
        Command::Image(ImageCommand::Create(args)) => done(images::create(conn, &args).await),
        Command::Build(args) | Command::Image(ImageCommand::Build(args)) => {
            // If Ctrl-C cannot be caught, it ends klee as it would without a build.
            let interrupted = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            done(images::build(conn, &args, &mut std::io::stdout(), interrupted).await)
        }
        Command::Image(ImageCommand::Rm(args)) | Command::Rmi(args) => {
            done(images::remove(conn, &args.names).await)
        }
        Command::Image(ImageCommand::Tag { source, nametag }) => {
            done(images::tag(conn, &source, &nametag).await)
        }
        Command::Image(ImageCommand::Prune(args)) => {
            done(images::prune(conn, args.all, args.force).await)
        }
        Command::Container(ContainerCommand::Ls(args)) | Command::Lsc(args) => {
            done(containers::list(conn, args.all, out).await)
        }
        Command::Container(ContainerCommand::Inspect(arg)) | Command::Isc(arg) => {
            done(containers::inspect(conn, &arg.name).await)
        }
        Command::Network(NetworkCommand::Ls) | Command::Lsn => {
            done(networks::list(conn, out).await)
        }
        Command::Network(NetworkCommand::Inspect(arg)) | Command::Isn(arg) => {
            done(networks::inspect(conn, &arg.name).await)
        }
        Command::Network(NetworkCommand::Create(args)) => done(networks::create(conn, &args).await),
        Command::Network(NetworkCommand::Rm(args)) | Command::Rmn(args) => {
            done(networks::remove(conn, &args.networks).await)
        }
        Command::Network(NetworkCommand::Prune(args)) => {
            done(networks::prune(conn, args.force).await)
        }
        Command::Network(NetworkCommand::Connect(args)) => {
            done(networks::connect(conn, &args).await)
        }
        Command::Network(NetworkCommand::Disconnect { network, container }) => {
            done(networks::disconnect(conn, &network, &container).await)
        }
        Command::Volume(VolumeCommand::Ls) | Command::Lsv => done(volumes::list(conn, out).await),
        Command::Volume(VolumeCommand::Inspect(arg)) | Command::Isv(arg) => {
            done(volumes::inspect(conn, &arg.name).await)
        }
        Command::Volume(VolumeCommand::Create(args)) => done(volumes::create(conn, &args).await),
        Command::Volume(VolumeCommand::Rm(args)) | Command::Rmv(args) => {
            done(volumes::remove(conn, &args.volumes).await)
        }
        Command::Volume(VolumeCommand::Prune(args)) => done(volumes::prune(conn, args.force).await),
        Command::Version => done(system::version(conn, out).await),
        Command::Info => done(system::info(conn, out).await),
        Command::Doctor { fix } => system::doctor(conn, fix, out).await,
        // Answered in main without a daemon.
        Command::Completion { .. } | Command::Man { .. } => Ok(0),
    }
}

/// GETs a list, printing it as JSON or handing it to `render` for a table.
async fn list<T: DeserializeOwned>(
    conn: &Connection,
    path: &str,
    out: Output,
    render: impl FnOnce(Vec<T>) -> String,
) -> Result<(), ClientError> {
    let items: serde_json::Value = conn.call(Method::GET, path, None).await?;
    if out.json {
        print_json(&items);
        return Ok(());
    }
    let items: Vec<T> = serde_json::from_value(items).map_err(|e| ClientError::Protocol {
        host: conn.host(),
        reason: format!("{path}: {e}"),
    })?;
    println!("{}", render(items));
    Ok(())
}

/// GETs an object and prints its JSON.
async fn inspect(conn: &Connection, path: &str) -> Result<(), ClientError> {
    let object: serde_json::Value = conn.call(Method::GET, path, None).await?;
    print_json(&object);
    Ok(())
}

/// A request body as JSON.
fn body<T: serde::Serialize>(value: &T) -> Result<Option<Vec<u8>>, ClientError> {
    serde_json::to_vec(value)
        .map(Some)
        .map_err(|e| ClientError::Settings(format!("cannot encode the request: {e}")))
}

fn print_json(value: &serde_json::Value) {
    // Serialising a parsed JSON value cannot fail.
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Characters escaped in a path segment: everything but unreserved characters and `:`/`@`, which
/// image references use.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// A path segment for an identifier typed by the user.
fn segment(identifier: &str) -> String {
    utf8_percent_encode(identifier, SEGMENT).to_string()
}

/// A query-string value.
fn query_value(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// What a command for several objects does when one of them fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Leave the rest alone (`stop`, `restart`, and `rm` of containers, networks and volumes, as
    /// the Python client does), saying which were not tried.
    Stop,
    /// Go on with the rest (`start -d`, as the Python client does).
    GoOn,
}

/// Runs `action` for each object in turn, printing the IDs that worked and the error of each
/// that failed; fails (already reported, exit 1) when any failed. A daemon that cannot be
/// reached ends it at once (exit 2).
pub(super) async fn each<F, Fut>(
    objects: &[String],
    on_failure: Failure,
    action: F,
) -> Result<(), ClientError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<IdResponse, ClientError>>,
{
    let mut failed = false;
    for (done, object) in objects.iter().enumerate() {
        match action(object.clone()).await {
            Ok(answer) => println!("{}", printable(&answer.id)),
            Err(err @ ClientError::Unreachable { .. }) => return Err(err),
            Err(err) => {
                eprintln!("klee: {object}: {}", printable(err.to_string().trim_end()));
                failed = true;
                let rest = &objects[done + 1..];
                if on_failure == Failure::Stop && !rest.is_empty() {
                    eprintln!(
                        "klee: stopped at the first failure; not tried: {}",
                        rest.join(" ")
                    );
                    break;
                }
            }
        }
    }
    if failed {
        Err(ClientError::Reported)
    } else {
        Ok(())
    }
}

/// Asks `question` on the terminal; refuses to guess when there is no terminal to ask.
fn confirm(question: &str) -> Result<bool, ClientError> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Settings(format!(
            "{question} Confirm with --force (stdin is not a terminal)."
        )));
    }
    print!("{question} Are you sure? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| ClientError::Settings(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_cannot_leave_their_path_segment() {
        assert_eq!(super::segment("base:latest"), "base:latest");
        assert_eq!(super::segment("../x?y"), "..%2Fx%3Fy");
        assert_eq!(super::query_value("new:tag"), "new%3Atag");
    }
}
