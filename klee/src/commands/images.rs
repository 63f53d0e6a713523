//! `klee image ...`, and `klee build` (image build).

use crate::output::printable;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Component, Path, PathBuf};

use http::Method;
use indicatif::{ProgressBar, ProgressStyle};
use kleene_api::{
    IdResponse, Image, ImageBuildConfig, ImageCreateConfig, ImageCreateMethod, MsgType,
};
use time::OffsetDateTime;

use super::networks::endpoint_config;
use super::{confirm, containers, query_value, segment, Output};
use crate::cli::{BuildArgs, ImageCreateArgs, MethodArg};
use crate::connection::{ClientError, Connection};
use crate::output::{since, table};
use crate::session::{self, Frame};

pub async fn list(conn: &Connection, out: Output) -> Result<(), ClientError> {
    super::list(conn, "/images/list", out, |images: Vec<Image>| {
        let now = OffsetDateTime::now_utc();
        let rows = images
            .into_iter()
            .map(|i| vec![i.id, i.name, i.tag, since(&i.created, now)])
            .collect();
        table(&["ID", "NAME", "TAG", "CREATED"], rows)
    })
    .await
}

pub async fn inspect(conn: &Connection, identifier: &str) -> Result<(), ClientError> {
    super::inspect(conn, &format!("/images/{}/inspect", segment(identifier))).await
}

/// Removes each image; goes on after a failure and reports it at the end.
pub async fn remove(conn: &Connection, images: &[String]) -> Result<(), ClientError> {
    let mut failed = None;
    for image in images {
        let path = format!("/images/{}", segment(image));
        match conn.call::<IdResponse>(Method::DELETE, &path, None).await {
            Ok(_) => println!("{image}"),
            Err(err @ ClientError::Api { .. }) => {
                eprintln!("klee: {}", printable(err.to_string().trim_end()));
                failed = Some(err);
            }
            Err(err) => return Err(err),
        }
    }
    match failed {
        // Already printed; the exit code still says something failed.
        Some(_) => Err(ClientError::Reported),
        None => Ok(()),
    }
}

pub async fn tag(conn: &Connection, image: &str, nametag: &str) -> Result<(), ClientError> {
    let path = format!(
        "/images/{}/tag?nametag={}",
        segment(image),
        query_value(nametag)
    );
    let answer: IdResponse = conn.call(Method::POST, &path, None).await?;
    println!("{}", printable(&answer.id));
    Ok(())
}

pub async fn prune(conn: &Connection, all: bool, force: bool) -> Result<(), ClientError> {
    let question = if all {
        "This removes every image no container or image is made from."
    } else {
        "This removes every untagged image no container or image is made from."
    };
    if !force && !confirm(question)? {
        return Ok(());
    }
    let removed: Vec<String> = conn
        .call(Method::POST, &format!("/images/prune?all={all}"), None)
        .await?;
    for id in removed {
        println!("{}", printable(&id));
    }
    Ok(())
}

/// Creates a base image, streaming the daemon's progress; downloads get a progress bar.
pub async fn create(conn: &Connection, args: &ImageCreateArgs) -> Result<(), ClientError> {
    let method = match args.method {
        MethodArg::Fetch => ImageCreateMethod::Fetch,
        MethodArg::FetchAuto => ImageCreateMethod::FetchAuto,
        MethodArg::ZfsCopy => ImageCreateMethod::ZfsCopy,
        MethodArg::ZfsClone => ImageCreateMethod::ZfsClone,
    };
    let source = match (method, &args.source) {
        (ImageCreateMethod::FetchAuto, Some(extra)) => {
            return Err(ClientError::Settings(format!(
                "fetch-auto takes no SOURCE, got '{extra}'"
            )))
        }
        (ImageCreateMethod::FetchAuto, None) => String::new(),
        (_, Some(source)) => source.clone(),
        (_, None) => {
            return Err(ClientError::Settings(format!(
                "the '{}' method needs a SOURCE ({})",
                method.as_str(),
                if method == ImageCreateMethod::Fetch {
                    "a URL"
                } else {
                    "a ZFS dataset"
                }
            )))
        }
    };
    let config = ImageCreateConfig {
        method,
        tag: args.tag.clone().unwrap_or_default(),
        dns: !args.no_dns,
        localtime: !args.no_localtime,
        update: args.update,
        zfs_dataset: if method == ImageCreateMethod::Fetch {
            String::new()
        } else {
            source.clone()
        },
        url: if method == ImageCreateMethod::Fetch {
            source
        } else {
            String::new()
        },
        autotag: method == ImageCreateMethod::FetchAuto && args.tag.is_none() && !args.no_autotag,
    };
    let mut bar: Option<ProgressBar> = None;
    let mut at_line_start = true;
    let ending = session::run(conn, "/images/create", &config, |frame| {
        let text = match frame {
            Frame::Started(_) => return,
            Frame::Text(text) => text,
            Frame::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        if let Some((done, total)) = parse_progress(&text) {
            let bar = bar.get_or_insert_with(|| new_bar(total));
            bar.set_position(done);
            if text.ends_with('\n') {
                bar.finish();
            }
            return;
        }
        if let Some(bar) = bar.take() {
            bar.finish();
        }
        print!("{}", printable(&text));
        if !text.is_empty() {
            at_line_start = text.ends_with('\n');
        }
    })
    .await?;
    // The failure's reason comes without a line end.
    if !at_line_start {
        println!();
    }
    if let Some(bar) = bar {
        bar.abandon();
    }
    if ending.succeeded() {
        let data = ending.message.map(|m| m.data).unwrap_or_default();
        println!("image created: {}", printable(&data));
        Ok(())
    } else {
        Err(ClientError::Failed(ending.describe()))
    }
}

/// PATH made absolute against the working directory, `.` and `..` taken as written (as Python's
/// `os.path.abspath` in the Python klee, and Docker's CLI, do): the daemon reads it on its host.
fn context_path(path: &Path) -> Result<String, ClientError> {
    let absolute = std::path::absolute(path).map_err(|e| {
        ClientError::Settings(format!("cannot make PATH {} absolute: {e}", path.display()))
    })?;
    let mut clean = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            // The root's parent is the root.
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean.into_os_string().into_string().map_err(|path| {
        ClientError::Settings(format!(
            "PATH {} is not UTF-8, which the API cannot carry",
            Path::new(&path).display()
        ))
    })
}

/// The configuration frame of `/images/build`: the build container is configured as `create`
/// configures a container, with `--from` as its image and `-n` as its one network.
async fn build_config(
    conn: &Connection,
    args: &BuildArgs,
) -> Result<ImageBuildConfig, ClientError> {
    let context = context_path(&args.path)?;
    let options = &args.container;
    let mut container_config = containers::configure(conn, options).await?;
    container_config.image = args.from.clone();
    // The daemon puts the build container's ID in place of "".
    let networks = options
        .network
        .iter()
        .map(|network| endpoint_config(network, "", options.ip.as_deref(), options.ip6.as_deref()))
        .collect();
    Ok(ImageBuildConfig {
        context,
        dockerfile: args.file.clone(),
        quiet: args.quiet,
        cleanup: !args.no_rm,
        tag: args.tag.clone().unwrap_or_default(),
        buildargs: args.build_args.iter().cloned().collect(),
        container_config,
        networks,
        nocache: args.no_cache,
    })
}

/// Builds an image from a Dockerfile, writing the daemon's output to `out` as it comes. When
/// `cancel` completes first (Ctrl-C), the session is closed, which makes the daemon stop the build
/// and remove what it made.
pub async fn build(
    conn: &Connection,
    args: &BuildArgs,
    out: &mut dyn Write,
    cancel: impl Future<Output = ()>,
) -> Result<(), ClientError> {
    let config = build_config(conn, args).await?;
    let mut id = String::new();
    let mut lines = BuildLines::default();
    let on_frame = |frame: Frame| {
        // A closed stdout must not stop the build; what is lost is only shown output.
        let _ = match frame {
            // Without an ID the Dockerfile was refused; the reason follows.
            Frame::Started(data) if data.is_empty() => Ok(()),
            Frame::Started(data) => {
                id = data;
                writeln!(out, "Started to build image with ID {id}")
            }
            Frame::Text(text) => lines.write(out, text.as_bytes()),
            Frame::Binary(bytes) => lines.write(out, &bytes),
        };
        let _ = out.flush();
    };
    let ending = session::run_until(conn, "/images/build", &config, on_frame, cancel).await?;
    let _ = lines.end(out);
    let image = if id.is_empty() {
        "the image".to_owned()
    } else {
        format!("image {id}")
    };
    if ending.cancelled {
        return Err(ClientError::Interrupted(format!(
            "build of {image} cancelled; kleened removes what it made"
        )));
    }
    if ending.succeeded() {
        let data = ending.message.map(|m| m.data).unwrap_or_default();
        let _ = writeln!(out, "image created: {data}");
        return Ok(());
    }
    match ending.message {
        Some(failed) if failed.msg_type == MsgType::Error => {
            let kept = match failed.data.as_str() {
                "" => String::new(),
                "no snapshots available" => {
                    format!("\nFailed to build {image}. No snapshots available")
                }
                snapshot => {
                    format!("\nFailed to build {image}. Most recent snapshot is {snapshot}")
                }
            };
            Err(ClientError::Failed(format!("{}{kept}", failed.message)))
        }
        _ => Err(ClientError::Failed(ending.describe())),
    }
}

/// The build's output as lines: the daemon's status frames (`Step k/n : ...`,
/// `--> Snapshot created: @...`, `Using user-supplied parent image: ...`) carry no line end, so
/// each is written on a line of its own, as the reference's client does; everything else (the
/// processes' output, error lines) as it comes. What ends without a line end is ended before the
/// next status line and at the end of the build.
#[derive(Debug)]
struct BuildLines {
    /// Whether the output so far ends a line.
    at_line_start: bool,
}

impl Default for BuildLines {
    fn default() -> Self {
        BuildLines {
            at_line_start: true,
        }
    }
}

impl BuildLines {
    /// Whether `frame` is one of the daemon's status lines.
    fn is_status(frame: &[u8]) -> bool {
        let text = String::from_utf8_lossy(frame);
        text.contains("--> Snapshot created: @")
            || (text.starts_with("Step ") && text.contains(" : "))
            || text.contains("Using user-supplied parent image:")
    }

    fn write(&mut self, out: &mut dyn Write, frame: &[u8]) -> std::io::Result<()> {
        if frame.is_empty() {
            return Ok(());
        }
        if Self::is_status(frame) && !frame.ends_with(b"\n") {
            self.end(out)?;
            out.write_all(frame)?;
            out.write_all(b"\n")?;
            self.at_line_start = true;
            return Ok(());
        }
        out.write_all(frame)?;
        self.at_line_start = frame.ends_with(b"\n");
        Ok(())
    }

    /// Ends the line the output is on, if it is not ended.
    fn end(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if !self.at_line_start {
            out.write_all(b"\n")?;
            self.at_line_start = true;
        }
        Ok(())
    }
}

fn new_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// Reads the daemon's `\rdownloaded N of M bytes (P%)` / `\rdownloaded N bytes` progress frames.
fn parse_progress(text: &str) -> Option<(u64, Option<u64>)> {
    let rest = text.strip_prefix("\rdownloaded ")?;
    let (done, rest) = rest.split_once(' ')?;
    let done = done.parse().ok()?;
    match rest.strip_prefix("of ") {
        Some(rest) => Some((done, Some(rest.split_once(' ')?.0.parse().ok()?))),
        None => rest.trim_end().eq("bytes").then_some((done, None)),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::cli::{Cli, Command, ImageCommand};
    use crate::fake_daemon::{close, text, FakeDaemon, WsStep, INFO_VNET};

    fn build_args(argv: &[&str]) -> BuildArgs {
        let cli = Cli::try_parse_from(["klee", "build"].iter().chain(argv)).unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        *args
    }

    /// The daemon's `/images/build` session, playing `steps`.
    fn build_session(steps: Vec<WsStep>) -> [(&'static str, Vec<WsStep>); 1] {
        [("GET /images/build", steps)]
    }

    const STARTED: &str = r#"{"msg_type":"starting","message":"","data":"b1d0f00d"}"#;
    const CREATED: &str = r#"{"msg_type":"closing","message":"image created","data":"b1d0f00d"}"#;

    /// Runs `klee build ARGV` against `daemon`, never interrupted; answers the outcome and what
    /// was printed.
    async fn run_build(daemon: &FakeDaemon, argv: &[&str]) -> (Result<(), ClientError>, String) {
        let mut out = Vec::new();
        let result = build(
            &daemon.connection(),
            &build_args(argv),
            &mut out,
            std::future::pending(),
        )
        .await;
        (result, String::from_utf8(out).unwrap())
    }

    fn cwd(relative: &str) -> String {
        let dir = std::env::current_dir().unwrap();
        let dir = if relative.is_empty() {
            dir
        } else {
            dir.join(relative)
        };
        dir.to_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn build_sends_every_option_in_the_configuration_frame() {
        let daemon = FakeDaemon::start_with_sessions(
            &[INFO_VNET],
            &build_session(vec![text(STARTED), close(1000, CREATED)]),
        );
        let (result, _) = run_build(
            &daemon,
            &[
                "-t",
                "web:1",
                "-f",
                "docker/Dockerfile.web",
                "--build-arg",
                "V=1",
                "--build-arg",
                "GREETING=hello world=yes",
                "-q",
                "--no-rm",
                "--from",
                "base:13",
                "--no-cache",
                "-e",
                "A=1",
                "-J",
                "allow.raw_sockets",
                "-n",
                "net",
                "--ip",
                "10.13.0.5",
                "ctx",
            ],
        )
        .await;
        result.unwrap();
        // A network without -l takes the daemon's default driver, as `create` does.
        assert_eq!(daemon.lines(), ["GET /info", "GET /images/build"]);
        assert_eq!(
            daemon.body("GET /images/build"),
            json!({
                "context": cwd("ctx"),
                "dockerfile": "docker/Dockerfile.web",
                "quiet": true,
                "cleanup": false,
                "tag": "web:1",
                "buildargs": {"V": "1", "GREETING": "hello world=yes"},
                "container_config": {
                    "name": null, "image": "base:13", "cmd": null, "user": "", "env": ["A=1"],
                    "mounts": [], "jail_param": ["allow.raw_sockets"], "network_driver": "vnet",
                    "public_ports": null, "restart_policy": null, "persist": null
                },
                "networks": [{"container": "", "network": "net", "ip_address": "10.13.0.5",
                              "ip_address6": "<auto>"}],
                "nocache": true
            })
        );
    }

    #[tokio::test]
    async fn build_of_the_working_directory_sends_the_defaults() {
        let daemon = FakeDaemon::start_with_sessions(
            &[],
            &build_session(vec![text(STARTED), close(1000, CREATED)]),
        );
        let (result, _) = run_build(&daemon, &["."]).await;
        result.unwrap();
        assert_eq!(
            daemon.lines(),
            ["GET /images/build"],
            "no network, no /info"
        );
        assert_eq!(
            daemon.body("GET /images/build"),
            json!({
                "context": cwd(""),
                "dockerfile": "Dockerfile",
                "quiet": false,
                "cleanup": true,
                "tag": "",
                "buildargs": {},
                "container_config": {
                    "name": null, "image": null, "cmd": null, "user": "", "env": [],
                    "mounts": [], "jail_param": [], "network_driver": "host",
                    "public_ports": null, "restart_policy": null, "persist": null
                },
                "networks": [],
                "nocache": false
            })
        );
    }

    #[tokio::test]
    async fn a_build_prints_its_output_as_it_comes_and_the_new_image() {
        let daemon = FakeDaemon::start_with_sessions(
            &[],
            &build_session(vec![
                text(STARTED),
                text("Step 1/2 : FROM base"),
                text("Step 2/2 : RUN echo hi"),
                text("h"),
                text("i\n"),
                text("--> Snapshot created: @5a9e"),
                close(1000, CREATED),
            ]),
        );
        let (result, out) = run_build(&daemon, &["ctx"]).await;
        result.unwrap();
        assert_eq!(
            out,
            "Started to build image with ID b1d0f00d\n\
             Step 1/2 : FROM base\n\
             Step 2/2 : RUN echo hi\n\
             hi\n\
             --> Snapshot created: @5a9e\n\
             image created: b1d0f00d\n"
        );
    }

    #[test]
    fn status_frames_get_lines_of_their_own_and_output_stays_as_written() {
        let mut lines = BuildLines::default();
        let mut out = Vec::new();
        for frame in [
            "Step 1/3 : RUN printf x",
            "x",
            "--> Snapshot created: @5a9e",
            "Step 2/3 : RUN echo a; echo b",
            "a\nb\n",
            "--> Using cache @77f0\n",
            "Step 3/3 : RUN false",
            "The command 'false' returned a non-zero code: 1",
        ] {
            lines.write(&mut out, frame.as_bytes()).unwrap();
        }
        lines.end(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Step 1/3 : RUN printf x\nx\n--> Snapshot created: @5a9e\nStep 2/3 : RUN echo a; \
             echo b\na\nb\n--> Using cache @77f0\nStep 3/3 : RUN false\nThe command 'false' \
             returned a non-zero code: 1\n"
        );
    }

    #[tokio::test]
    async fn a_failed_build_kept_with_no_rm_names_its_last_snapshot_and_exits_1() {
        let daemon = FakeDaemon::start_with_sessions(
            &[],
            &build_session(vec![
                text(STARTED),
                text("Step 1/2 : RUN touch /a"),
                text("--> Snapshot created: @5a9e"),
                text("Step 2/2 : RUN false"),
                text("The command 'false' returned a non-zero code: 1"),
                close(
                    1011,
                    r#"{"msg_type":"error","message":"image build failed","data":"@5a9e"}"#,
                ),
            ]),
        );
        let (result, out) = run_build(&daemon, &["--no-rm", "ctx"]).await;
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "image build failed\nFailed to build image b1d0f00d. Most recent snapshot is @5a9e"
        );
        assert_eq!(err.exit_code(), 1);
        assert!(
            out.starts_with("Started to build image with ID b1d0f00d\n"),
            "{out}"
        );
        assert!(
            out.ends_with("The command 'false' returned a non-zero code: 1\n"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn a_failed_build_that_was_removed_says_only_that_it_failed() {
        let daemon = FakeDaemon::start_with_sessions(
            &[],
            &build_session(vec![
                text(STARTED),
                text("error: could not find image nonexisting\n"),
                close(
                    1011,
                    r#"{"msg_type":"error","message":"image build failed","data":""}"#,
                ),
            ]),
        );
        let (result, _) = run_build(&daemon, &["ctx"]).await;
        let err = result.unwrap_err();
        assert_eq!(err.to_string(), "image build failed");
        assert_eq!(err.exit_code(), 1);
    }

    #[tokio::test]
    async fn a_dockerfile_that_cannot_be_read_fails_before_any_image_and_exits_1() {
        let daemon = FakeDaemon::start_with_sessions(
            &[],
            &build_session(vec![
                text(r#"{"msg_type":"starting","message":"","data":""}"#),
                text("'RUN true' not permitted before a FROM instruction\n"),
                close(
                    1011,
                    r#"{"msg_type":"error","message":"failed to process Dockerfile","data":""}"#,
                ),
            ]),
        );
        let (result, out) = run_build(&daemon, &["ctx"]).await;
        let err = result.unwrap_err();
        assert_eq!(err.to_string(), "failed to process Dockerfile");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(out, "'RUN true' not permitted before a FROM instruction\n");
    }

    #[tokio::test]
    async fn a_daemon_without_the_build_endpoint_is_an_error_not_an_absent_daemon() {
        let daemon = FakeDaemon::start(&[]);
        let (result, out) = run_build(&daemon, &["ctx"]).await;
        let err = result.unwrap_err();
        assert!(
            err.to_string()
                .ends_with("does not serve /images/build: is it older than this klee?"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
        assert_eq!(out, "");
    }

    /// Output that completes `seen` once `awaited` was written, as a user sees it before Ctrl-C.
    struct Watch {
        out: Vec<u8>,
        awaited: &'static str,
        seen: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Write for Watch {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.out.extend_from_slice(bytes);
            if String::from_utf8_lossy(&self.out).contains(self.awaited) {
                if let Some(seen) = self.seen.take() {
                    let _ = seen.send(());
                }
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn ctrl_c_closes_the_session_and_exits_130() {
        let daemon = FakeDaemon::start_with_sessions(
            &[],
            &build_session(vec![
                text(STARTED),
                text("Step 1/2 : RUN sleep 600"),
                WsStep::Receive,
            ]),
        );
        let (seen, ctrl_c) = tokio::sync::oneshot::channel();
        let mut out = Watch {
            out: Vec::new(),
            awaited: "Step 1/2",
            seen: Some(seen),
        };
        let interrupted = async {
            let _ = ctrl_c.await;
        };
        let err = build(
            &daemon.connection(),
            &build_args(&["ctx"]),
            &mut out,
            interrupted,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ClientError::Interrupted(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "build of image b1d0f00d cancelled; kleened removes what it made"
        );
        assert_eq!(err.exit_code(), 130);
        // The daemon heard the client go (it records that after the client returned).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while daemon.received().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(daemon.received(), ["close 1001"]);
    }

    #[test]
    fn the_context_is_made_absolute_as_written() {
        assert_eq!(context_path(Path::new(".")).unwrap(), cwd(""));
        assert_eq!(context_path(Path::new("a/./b/../c/")).unwrap(), cwd("a/c"));
        assert_eq!(context_path(Path::new("/srv/../ctx")).unwrap(), "/ctx");
        assert_eq!(context_path(Path::new("/..")).unwrap(), "/");
    }

    #[test]
    fn build_options_parse_as_docker_takes_them() {
        let args = build_args(&["--no-rm", "--rm", "ctx"]);
        assert!(!args.no_rm, "the last of --rm and --no-rm wins");
        let args = build_args(&["--rm", "--no-rm", "ctx"]);
        assert!(args.no_rm);
        // NAME alone takes klee's own value of NAME.
        let path = std::env::var("PATH").unwrap();
        let args = build_args(&["--build-arg", "PATH", "--build-arg", "E=", "ctx"]);
        assert_eq!(
            args.build_args,
            [("PATH".to_owned(), path), ("E".to_owned(), String::new())]
        );
        let exit = |argv: &[&str]| {
            Cli::try_parse_from(["klee", "build"].iter().chain(argv))
                .unwrap_err()
                .exit_code()
        };
        assert_eq!(exit(&["--build-arg", "=1", "ctx"]), 2);
        assert_eq!(exit(&["--build-arg", "KLEE_TEST_SURELY_UNSET", "ctx"]), 2);
        assert_eq!(exit(&["--ip", "10.0.0.2", "ctx"]), 2, "--ip needs -n");
        assert_eq!(exit(&[]), 2, "PATH is needed");
        let cli =
            Cli::try_parse_from(["klee", "image", "build", "-t", "web", "-q", "ctx"]).unwrap();
        let Command::Image(ImageCommand::Build(args)) = cli.command else {
            panic!("not image build")
        };
        assert_eq!((args.tag.as_deref(), args.quiet), (Some("web"), true));
    }

    #[test]
    fn progress_frames_are_recognised() {
        assert_eq!(
            parse_progress("\rdownloaded 50 of 200 bytes (25%)"),
            Some((50, Some(200)))
        );
        assert_eq!(
            parse_progress("\rdownloaded 200 of 200 bytes (100%)\n"),
            Some((200, Some(200)))
        );
        assert_eq!(parse_progress("\rdownloaded 7 bytes"), Some((7, None)));
        assert_eq!(parse_progress("downloaded 7 bytes"), None);
        assert_eq!(
            parse_progress("Extracted 288 files, creating image...\n"),
            None
        );
    }
}
