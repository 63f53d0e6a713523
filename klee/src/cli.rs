//! The command line, as clap parses it. No behaviour here: `commands` acts on what this produces.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use kleene_api::{MountPointConfig, PublishedPortConfig};

/// klee: the command-line client of kleened.
#[derive(Debug, Parser)]
#[command(
    name = "klee",
    version,
    about = "Command-line client of the Kleene container daemon",
    after_long_help = EXIT_STATUS
)]
pub struct Cli {
    /// Where kleened listens: http:///path/to.sock, http://IP:PORT or https://...
    #[arg(long, env = "KLEE_HOST", default_value = kleene_api::DEFAULT_HOST, global = true)]
    pub host: String,
    /// Verify the daemon's TLS certificate (against --tlscacert, or the system's CAs).
    #[arg(long, env = "KLEE_TLS_VERIFY", global = true)]
    pub tlsverify: bool,
    /// CA certificate the daemon's certificate must be signed by.
    #[arg(long, env = "KLEE_TLS_CACERT", global = true, value_name = "PEM")]
    pub tlscacert: Option<PathBuf>,
    /// Client certificate for daemons that require one.
    #[arg(long, env = "KLEE_TLS_CERT", global = true, value_name = "PEM")]
    pub tlscert: Option<PathBuf>,
    /// Key of the client certificate.
    #[arg(long, env = "KLEE_TLS_KEY", global = true, value_name = "PEM")]
    pub tlskey: Option<PathBuf>,
    /// Print the daemon's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The end of `klee --help` and of klee(1).
const EXIT_STATUS: &str = "\
Exit status:
    0  success (run, start and exec: the process's own exit code)
    1  kleened answered with an error, or its answer could not be understood
    2  kleened could not be reached, or the command line is wrong
  130  interrupted with Ctrl-C (build: once the build is cancelled)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Create a container and start it (container run).
    Run(RunArgs),
    /// Create a container (container create).
    Create(CreateArgs),
    /// Build an image from a Dockerfile (image build).
    #[command(after_long_help = BUILD_NOTES)]
    Build(Box<BuildArgs>),
    /// Start containers (container start).
    Start(StartArgs),
    /// Stop containers (container stop).
    Stop(ContainersArg),
    /// Restart containers (container restart).
    Restart(ContainersArg),
    /// Run a command in a running container (container exec).
    Exec(ExecArgs),
    /// Remove containers (container rm).
    #[command(visible_alias = "rm")]
    Rmc(ContainerRemoveArgs),
    /// Rename a container (container rename).
    Rename(RenameArgs),
    /// Show a container's output (container logs).
    Logs(LogsArgs),
    /// List images (image ls).
    #[command(visible_alias = "images")]
    Lsi,
    /// List containers (container ls).
    #[command(visible_alias = "ps")]
    Lsc(ContainerListArgs),
    /// List networks (network ls).
    Lsn,
    /// List volumes (volume ls).
    Lsv,
    /// Inspect an image (image inspect).
    Isi(ObjectArg),
    /// Remove images (image rm).
    Rmi(RemoveArgs),
    /// Inspect a container (container inspect).
    Isc(ObjectArg),
    /// Inspect a network (network inspect).
    Isn(ObjectArg),
    /// Remove networks (network rm).
    Rmn(NetworksArg),
    /// Inspect a volume (volume inspect).
    Isv(VolumeArg),
    /// Remove volumes (volume rm).
    Rmv(VolumesArg),
    /// Show the versions of klee, of kleened and of the API they speak.
    Version,
    /// Show what kleened says about itself and its host: OS, runtime, ZFS space, object counts,
    /// uptime.
    Info,
    /// Check kleened's host (ZFS root and pool, packet filter, forwarding, kernel modules or
    /// cgroups, leftovers no object owns); each finding names the command that fixes it. Exits
    /// 0 when all is well, 1 with findings.
    Doctor {
        /// Let kleened do the safe fixes (leftover datasets, cgroups, mounts and interfaces,
        /// forwarding), then check again.
        #[arg(long)]
        fix: bool,
    },
    /// Print a shell completion script (e.g. `source <(klee completion bash)`).
    Completion {
        /// The shell the script is for.
        shell: Shell,
    },
    /// Write klee's man pages (one per command) into DIR; `man/` holds the committed copies.
    #[command(name = "__man", hide = true)]
    Man {
        /// Directory to write the pages into; it must exist.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image from a Dockerfile.
    #[command(after_long_help = BUILD_NOTES)]
    Build(Box<BuildArgs>),
    /// Create a base image from a tar archive or a ZFS dataset.
    Create(ImageCreateArgs),
    /// List images.
    #[command(visible_alias = "list")]
    Ls,
    /// Show everything about an image.
    Inspect(ObjectArg),
    /// Remove images.
    Rm(RemoveArgs),
    /// Give an image a name and tag (name[:tag], tag defaults to latest).
    Tag {
        /// The image: ID, ID prefix or name[:tag].
        source: String,
        /// The new name[:tag].
        nametag: String,
    },
    /// Remove images that no container or image is made from.
    Prune(PruneArgs),
}

/// How `image create` makes the image.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MethodArg {
    /// Download a tar archive from SOURCE (http://, https:// or file:// on the daemon's host).
    Fetch,
    /// Download the FreeBSD base system of the host's release (FreeBSD only).
    FetchAuto,
    /// Copy the ZFS dataset SOURCE.
    ZfsCopy,
    /// Clone the ZFS dataset SOURCE (the image depends on it).
    ZfsClone,
}

#[derive(Debug, Args)]
pub struct ImageCreateArgs {
    /// How to make the image.
    #[arg(value_enum)]
    pub method: MethodArg,
    /// URL (fetch) or ZFS dataset (zfs-copy, zfs-clone).
    pub source: Option<String>,
    /// Name and tag of the image, name[:tag].
    #[arg(short, long)]
    pub tag: Option<String>,
    /// Do not copy the host's /etc/resolv.conf into the image.
    #[arg(long)]
    pub no_dns: bool,
    /// Do not copy the host's /etc/localtime into the image.
    #[arg(long)]
    pub no_localtime: bool,
    /// Update the image with freebsd-update(8) (FreeBSD only).
    #[arg(long)]
    pub update: bool,
    /// fetch-auto: do not name the image FreeBSD-<version>:latest.
    #[arg(long)]
    pub no_autotag: bool,
}

/// The end of `klee build --help` and of its man pages.
const BUILD_NOTES: &str = "\
PATH is read by kleened, on its own host: klee sends the absolute path of PATH (made absolute \
against klee's working directory), not the files in it, so klee and kleened must see the same \
directory there, as with the Python klee.

Each instruction runs in a build container, made as `klee create` makes a container from the \
container options above (-u, -e, -m, -J, -l, -n, --ip, --ip6), and starting from the Dockerfile's \
FROM image or from --from.

A failed build is removed (--rm, the default, as Docker does). With --no-rm it is kept as the \
image NAME:failed and its most recent snapshot is printed, to look into it with `klee run \
IMAGE@SNAPSHOT`. The Python klee keeps failed builds unless given --rm.

Ctrl-C cancels the build: klee closes the connection and kleened removes the build container \
and what it made.";

/// How an image is built.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and tag of the image, name[:tag], tag defaulting to latest [default: untagged].
    #[arg(short, long, value_name = "NAME[:TAG]")]
    pub tag: Option<String>,
    /// The Dockerfile, as a path relative to PATH.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "Dockerfile"
    )]
    pub file: String,
    /// Value of one of the Dockerfile's ARG variables (repeatable): NAME=value, or NAME alone for
    /// the value of NAME in klee's environment.
    #[arg(long = "build-arg", value_name = "NAME=value", value_parser = parse_build_arg)]
    pub build_args: Vec<(String, String)>,
    /// Print only the snapshots made, not the steps and their output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Remove a failed build, as Docker does (the default; the Python klee's is to keep it).
    #[arg(long, overrides_with = "no_rm")]
    pub rm: bool,
    /// Keep a failed build as the image NAME:failed.
    #[arg(long, overrides_with = "rm")]
    pub no_rm: bool,
    /// Start from this image instead of the Dockerfile's FROM: ID, ID prefix or name[:tag],
    /// optionally @snapshot.
    #[arg(long, value_name = "IMAGE")]
    pub from: Option<String>,
    /// Run every instruction, using no step cached by an earlier build.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub container: ContainerOptions,
    /// The build context: the directory the Dockerfile and the files it copies are in, on
    /// kleened's host.
    pub path: PathBuf,
}

/// `--build-arg NAME=value`, or `NAME` for the value of NAME in klee's environment (as Docker).
fn parse_build_arg(arg: &str) -> Result<(String, String), String> {
    let (name, value) = match arg.split_once('=') {
        Some((name, value)) => (name, value.to_owned()),
        None => (
            arg,
            std::env::var(arg).map_err(|_| {
                format!("{arg} is not set in the environment; give its value as {arg}=value")
            })?,
        ),
    };
    if name.is_empty() {
        return Err(format!("'{arg}' names no variable; expected NAME=value"));
    }
    Ok((name.to_owned(), value))
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// IDs, ID prefixes or names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove tagged images too, not only untagged ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

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
    /// Network driver [default: host; with -n the daemon's default: ipnet on FreeBSD, vnet on
    /// Linux].
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

/// How a container is made.
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
pub struct ForceArg {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls,
    /// Show everything about a network and the containers connected to it.
    Inspect(ObjectArg),
    /// Remove networks, disconnecting their containers first (stops at the first failure).
    Rm(NetworksArg),
    /// Remove every network no container is connected to.
    Prune(ForceArg),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network (a running one too).
    Disconnect {
        /// The network: ID, ID prefix or name.
        network: String,
        /// The container: ID, ID prefix or name.
        container: String,
    },
}

/// Kind of a network's host interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkTypeArg {
    /// A bridge; vnet containers are wired to it and may get a gateway.
    Bridge,
    /// A loopback interface (FreeBSD; a dummy interface on Linux).
    Loopback,
    /// An existing interface, named by --interface, that kleened neither creates nor destroys.
    Custom,
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Kind of host interface.
    #[arg(
        short = 't',
        long = "type",
        value_name = "TYPE",
        value_enum,
        default_value = "loopback"
    )]
    pub kind: NetworkTypeArg,
    /// Host interface [default: kleene<N>]; for a custom network an existing interface.
    #[arg(
        short,
        long,
        value_name = "IFACE",
        default_value = "",
        hide_default_value = true
    )]
    pub interface: String,
    /// IPv4 subnet in CIDR notation [default: none].
    #[arg(
        long,
        value_name = "CIDR",
        default_value = "",
        hide_default_value = true
    )]
    pub subnet: String,
    /// IPv6 subnet in CIDR notation [default: none].
    #[arg(
        long,
        value_name = "CIDR",
        default_value = "",
        hide_default_value = true
    )]
    pub subnet6: String,
    /// Bridge networks only: IPv4 default route of vnet containers; `auto` is the first address
    /// of the subnet, put on the bridge; "" for none [default: auto].
    #[arg(long = "gw", value_name = "IP|auto")]
    pub gateway: Option<String>,
    /// Bridge networks only: IPv6 default route of vnet containers, as --gw [default: auto].
    #[arg(long = "gw6", value_name = "IP|auto")]
    pub gateway6: Option<String>,
    /// Translate outgoing IPv4 traffic to this interface's address [default: the interface of
    /// the host's default route].
    #[arg(
        long,
        visible_alias = "nat-if",
        value_name = "IFACE",
        conflicts_with = "no_nat"
    )]
    pub nat: Option<String>,
    /// No NAT for outgoing traffic.
    #[arg(long)]
    pub no_nat: bool,
    /// Containers of the network may talk to each other (the default).
    #[arg(long, overrides_with = "no_icc")]
    pub icc: bool,
    /// Containers of the network may not talk to each other.
    #[arg(long, overrides_with = "icc")]
    pub no_icc: bool,
    /// No traffic may leave the network.
    #[arg(long)]
    pub internal: bool,
    /// Name of the network.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct NetworksArg {
    /// Networks: IDs, ID prefixes or names.
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// IPv4 address [default: an unused one of the network's subnet, if it has one].
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// IPv6 address [default: an unused one of the network's IPv6 subnet, if it has one].
    #[arg(long, value_name = "IP")]
    pub ip6: Option<String>,
    /// The network: ID, ID prefix or name.
    pub network: String,
    /// The container: ID, ID prefix or name.
    pub container: String,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a ZFS dataset); one of that name that exists already is left as it is.
    Create(VolumeCreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls,
    /// Show everything about a volume and the containers that mount it.
    Inspect(VolumeArg),
    /// Remove volumes (stops at the first failure).
    Rm(VolumesArg),
    /// Remove every volume no container mounts.
    Prune(ForceArg),
}

#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// The most the volume may hold, as zfs(8) reads a size (500M, 10G): its ZFS quota
    /// [default: no limit].
    #[arg(short, long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Name of the volume: letters, digits, _, . and -, starting with a letter or digit.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct VolumeArg {
    /// Volume name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct VolumesArg {
    /// Volume names.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ContainerListArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ObjectArg {
    /// ID, ID prefix or name.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_the_image_with_its_own_options() {
        let cli = Cli::try_parse_from([
            "klee", "run", "--rm", "-it", "base", "/bin/sh", "-c", "ls -l",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert!(run.rm && run.attach.interactive && run.attach.tty && !run.attach.detach);
        assert_eq!(run.create.image, "base");
        assert_eq!(run.create.cmd, ["/bin/sh", "-c", "ls -l"]);
    }

    #[test]
    fn network_commands_and_their_shortcuts() {
        let cli = Cli::try_parse_from(["klee", "rmn", "a", "b"]).unwrap();
        assert!(
            matches!(cli.command, Command::Rmn(NetworksArg { networks }) if networks == ["a", "b"])
        );
        assert!(
            Cli::try_parse_from(["klee", "rmn"]).is_err(),
            "a network is required"
        );
        let cli = Cli::try_parse_from(["klee", "isn", "net"]).unwrap();
        assert!(matches!(cli.command, Command::Isn(ObjectArg { name }) if name == "net"));
        let cli = Cli::try_parse_from(["klee", "network", "prune", "-f"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Network(NetworkCommand::Prune(ForceArg { force: true }))
        ));
        let cli = Cli::try_parse_from([
            "klee", "network", "connect", "--ip6", "fd00::3", "net", "web",
        ])
        .unwrap();
        let Command::Network(NetworkCommand::Connect(args)) = cli.command else {
            panic!("not network connect")
        };
        assert_eq!(
            (args.network.as_str(), args.container.as_str()),
            ("net", "web")
        );
        assert_eq!((args.ip, args.ip6.as_deref()), (None, Some("fd00::3")));
        let cli = Cli::try_parse_from(["klee", "network", "disconnect", "net", "web"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Network(NetworkCommand::Disconnect { network, container })
                if network == "net" && container == "web"
        ));
    }

    #[test]
    fn run_takes_network_options_before_the_image_and_repeats_publish() {
        let cli = Cli::try_parse_from([
            "klee",
            "run",
            "-d",
            "-n",
            "net",
            "--ip",
            "10.13.0.9",
            "-l",
            "vnet",
            "-p",
            "8080:80",
            "-p",
            "53/udp",
            "base",
            "httpd",
            "-p",
            "80",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        let create = run.create;
        assert_eq!(create.container.network.as_deref(), Some("net"));
        assert_eq!(create.container.ip.as_deref(), Some("10.13.0.9"));
        assert_eq!(create.container.driver, Some(DriverArg::Vnet));
        let ports: Vec<_> = create
            .publish
            .iter()
            .map(|p| p.host_port.as_str())
            .collect();
        assert_eq!(ports, ["8080", "53"]);
        // Options after the image belong to the command.
        assert_eq!(create.cmd, ["httpd", "-p", "80"]);
    }

    #[test]
    fn names_people_type_from_habit_parse_as_their_commands() {
        let parse = |argv: &[&str]| {
            Cli::try_parse_from(std::iter::once("klee").chain(argv.iter().copied()))
                .unwrap()
                .command
        };
        assert!(matches!(
            parse(&["rm", "-f", "a", "b"]),
            Command::Rmc(ContainerRemoveArgs { force: true, containers }) if containers == ["a", "b"]
        ));
        assert!(matches!(
            parse(&["ps", "-a"]),
            Command::Lsc(ContainerListArgs { all: true })
        ));
        assert!(matches!(
            parse(&["container", "ps"]),
            Command::Container(ContainerCommand::Ls(ContainerListArgs { all: false }))
        ));
        assert!(matches!(parse(&["images"]), Command::Lsi));
        assert!(matches!(
            parse(&["rename", "web", "www"]),
            Command::Rename(RenameArgs { container, name }) if container == "web" && name == "www"
        ));
        assert!(matches!(
            parse(&["start", "-d", "a", "b"]),
            Command::Start(StartArgs { containers, .. }) if containers == ["a", "b"]
        ));
        assert!(
            Cli::try_parse_from(["klee", "start"]).is_err(),
            "a container is required"
        );
    }

    #[test]
    fn shortcuts_and_global_options_parse_anywhere() {
        let cli = Cli::try_parse_from([
            "klee",
            "lsc",
            "-a",
            "--host",
            "http:///tmp/k.sock",
            "--json",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Lsc(ContainerListArgs { all: true })
        ));
        assert_eq!(cli.host, "http:///tmp/k.sock");
        assert!(cli.json);
        let cli = Cli::try_parse_from(["klee", "container", "ls", "--all"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Container(ContainerCommand::Ls(ContainerListArgs { all: true }))
        ));
    }
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
mod restart_arg_tests {
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
