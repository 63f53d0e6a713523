//! `klee container` and the shortcuts that act on containers (`run`, `exec`, `logs`, ...).

use clap::{Args, Subcommand};
use kleene_api::{MountPointConfig, PublishedPortConfig};

use super::{ForceArg, ObjectArg};

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create a container without starting it.
    Create(CreateArgs),
    /// Create a container and start it (attached unless -d).
    Run(RunArgs),
    /// Start stopped containers: one attached, or several with -d.
    Start(StartArgs),
    /// Stop running containers (stops at the first failure).
    Stop(ContainersArg),
    /// Stop and start containers again, detached (stops at the first failure).
    Restart(ContainersArg),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Remove containers (stops at the first failure).
    Rm(ContainerRemoveArgs),
    /// Show a container's output.
    Logs(LogsArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Change a container's command, user, environment, jail parameters or restart policy.
    Update(UpdateArgs),
    /// List containers.
    #[command(visible_aliases = ["list", "ps"])]
    Ls(ContainerListArgs),
    /// Show everything about a container.
    Inspect(ObjectArg),
    /// Remove every stopped container that is not marked persist.
    Prune(ForceArg),
}

/// Network driver of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriverArg {
    /// The host's network stack.
    Host,
    /// A network stack of its own (on Linux: a network namespace).
    Vnet,
    /// Addresses shared with the host (FreeBSD only).
    Ipnet,
    /// Only a loopback interface.
    Disabled,
}

/// Restart policy of a container: `no`, `on-startup`, `always` or `on-failure[:MAX_RETRIES]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartArg {
    /// The policy.
    pub policy: kleene_api::RestartPolicy,
    /// With `on-failure`: at most this many restarts in a row.
    pub max_retries: Option<u32>,
}

impl std::str::FromStr for RestartArg {
    type Err = String;

    fn from_str(text: &str) -> Result<RestartArg, String> {
        use kleene_api::RestartPolicy;
        let (name, max) = match text.split_once(':') {
            Some((name, max)) => (name, Some(max)),
            None => (text, None),
        };
        let policy = match name {
            "no" => RestartPolicy::No,
            "on-startup" => RestartPolicy::OnStartup,
            "always" => RestartPolicy::Always,
            "on-failure" => RestartPolicy::OnFailure,
            _ => {
                return Err(format!(
                    "'{text}' is not a restart policy: no, on-startup, always or \
                     on-failure[:MAX_RETRIES]"
                ))
            }
        };
        let max_retries = match max {
            None => None,
            Some(_) if policy != RestartPolicy::OnFailure => {
                return Err(format!(
                    "'{text}': only on-failure takes a number of retries"
                ))
            }
            Some(max) => Some(max.parse::<u32>().map_err(|_| {
                format!("'{text}': the number of retries must be a whole number such as 3")
            })?),
        };
        Ok(RestartArg {
            policy,
            max_retries,
        })
    }
}

/// The options of a container that `create`, `run` and `build` (for its build container) share.
#[derive(Debug, Args)]
pub struct ContainerOptions {
    /// User the command runs as (name or uid[:gid]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Environment variable NAME=value (repeatable).
    #[arg(short, long = "env", value_name = "NAME=value")]
    pub env: Vec<String>,
    /// Mount a volume or a host file or directory (repeatable): SOURCE:DESTINATION[:OPTIONS]. A
    /// SOURCE starting with / is a path on the host (a nullfs mount), anything else a volume's
    /// name; DESTINATION is an absolute path in the container. OPTIONS is a comma list: ro mounts
    /// read-only, rw (the default) read-write; mounts are nosuid and nodev unless suid (setuid
    /// and setgid files take effect) or dev (device nodes work) is given.
    #[arg(
        short = 'm',
        long = "mount",
        value_name = "SOURCE:DESTINATION[:OPTIONS]",
        value_parser = crate::mount::parse
    )]
    pub mount: Vec<MountPointConfig>,
    /// Jail parameter name=value (repeatable).
    #[arg(short = 'J', long = "jailparam", value_name = "PARAM")]
    pub jail_param: Vec<String>,
    /// Network driver [default: host; with -n the daemon's default, ipnet].
    #[arg(short = 'l', long = "driver", value_enum)]
    pub driver: Option<DriverArg>,
    /// Connect the container to this network (ID, ID prefix or name) once it is created.
    #[arg(short = 'n', long)]
    pub network: Option<String>,
    /// IPv4 address on the network [default: an unused one of its subnet, if it has one].
    #[arg(long, value_name = "IP", requires = "network")]
    pub ip: Option<String>,
    /// IPv6 address on the network [default: an unused one of its IPv6 subnet, if it has one].
    #[arg(long, value_name = "IP", requires = "network")]
    pub ip6: Option<String>,
}

/// Resource limits of a container (`run`, `create`, `update`).
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Memory limit: bytes or a number with k, m, g or t (such as 256m); 0 removes it.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Most processes the container may have at once; 0 removes the limit.
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// CPU time, in CPUs (0.5: half of one CPU); 0 removes the limit.
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<serde_json::Number>,
}

/// How a container is made.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the container.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub container: ContainerOptions,
    /// Publish ports (repeatable): HOST_PORT[:CONTAINER_PORT][/PROTOCOL] or
    /// INTERFACE:HOST_PORT:CONTAINER_PORT[/PROTOCOL]. CONTAINER_PORT defaults to HOST_PORT,
    /// PROTOCOL (tcp or udp) to tcp, the interface to the host's gateway interface; a port may be
    /// a range N-M.
    #[arg(short = 'p', long, value_name = "SPEC", value_parser = crate::publish::parse)]
    pub publish: Vec<PublishedPortConfig>,
    /// Restart policy: no, on-startup, always or on-failure[:MAX_RETRIES].
    #[arg(long, value_name = "POLICY", default_value = "no")]
    pub restart: RestartArg,
    /// Keep the container when pruning.
    #[arg(long)]
    pub persist: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Storage option (repeatable): size=SIZE caps the container's file system (bytes or a
    /// number with k, m, g or t, such as 10g; 0: unlimited) [default: the daemon's
    /// container_storage_size].
    #[arg(long = "storage-opt", value_name = "size=SIZE", value_parser = parse_storage_opt)]
    pub storage_opt: Vec<String>,
    /// The image: ID, ID prefix or name[:tag], optionally @snapshot.
    pub image: String,
    /// Command and arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// `size=SIZE` of `--storage-opt`: the size as given.
fn parse_storage_opt(text: &str) -> Result<String, String> {
    match text.split_once('=') {
        Some(("size", size)) if !size.is_empty() => Ok(size.to_owned()),
        Some(("size", _)) => Err("size= needs a size, such as size=10g".to_owned()),
        _ => Err(format!(
            "unknown storage option '{text}': the one storage option is size=SIZE"
        )),
    }
}

/// How a process is attached.
#[derive(Debug, Args, Clone, Copy)]
pub struct AttachArgs {
    /// Do not attach: start and return.
    #[arg(short, long)]
    pub detach: bool,
    /// Send this terminal's input to the process.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub attach: AttachArgs,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub attach: AttachArgs,
    /// Containers: IDs, ID prefixes or names; more than one only with -d.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub attach: AttachArgs,
    /// User the command runs as (name or uid[:gid]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Environment variable NAME=value (repeatable).
    #[arg(short, long = "env", value_name = "NAME=value")]
    pub env: Vec<String>,
    /// The container: ID, ID prefix or name.
    pub container: String,
    /// Command and arguments (default: the container's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ContainersArg {
    /// Containers: IDs, ID prefixes or names.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container: ID, ID prefix or name.
    pub container: String,
    /// Its new name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ContainerRemoveArgs {
    /// Stop running containers first.
    #[arg(short, long)]
    pub force: bool,
    /// Containers: IDs, ID prefixes or names.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New user.
    #[arg(short, long)]
    pub user: Option<String>,
    /// New environment (replaces the whole list; repeatable).
    #[arg(short, long = "env", value_name = "NAME=value")]
    pub env: Vec<String>,
    /// New jail parameters (replace the whole list; repeatable).
    #[arg(short = 'J', long = "jailparam", value_name = "PARAM")]
    pub jail_param: Vec<String>,
    /// New restart policy: no, on-startup, always or on-failure[:MAX_RETRIES].
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<RestartArg>,
    /// Keep the container when pruning (true or false).
    #[arg(long)]
    pub persist: Option<bool>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The container: ID, ID prefix or name.
    pub container: String,
    /// New command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ContainerListArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
}

/// What `klee logs` shows.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Go on with new output (across restarts of the container) until it is removed.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only output since this time: RFC 3339 (2026-12-01T10:00:00Z), seconds since the epoch, or a
    /// duration back from now (30s, 10m, 2h, 1d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Begin each line with the time it was written.
    #[arg(short, long)]
    pub timestamps: bool,
    /// The container: ID, ID prefix or name.
    pub container: String,
}

#[cfg(test)]
mod tests {
    use super::RestartArg;
    use kleene_api::RestartPolicy;

    #[test]
    fn restart_policies_parse_with_a_bound_for_on_failure_only() {
        let parse = |text: &str| text.parse::<RestartArg>();
        assert_eq!(
            parse("on-failure:3"),
            Ok(RestartArg {
                policy: RestartPolicy::OnFailure,
                max_retries: Some(3)
            })
        );
        assert_eq!(parse("always").map(|r| r.policy), Ok(RestartPolicy::Always));
        assert_eq!(parse("no").map(|r| r.max_retries), Ok(None));
        assert!(parse("always:2").unwrap_err().contains("only on-failure"));
        assert!(parse("on-failure:x").unwrap_err().contains("whole number"));
        assert!(parse("sometimes")
            .unwrap_err()
            .contains("not a restart policy"));
    }
}
