//! The command line, as clap parses it. No behaviour here: `commands` acts on what this produces.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// klee: the command-line client of kleened.
#[derive(Debug, Parser)]
#[command(
    name = "klee",
    version,
    about = "Command-line client of the Kleene container daemon"
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
    /// Start a container (container start).
    Start(StartArgs),
    /// Stop containers (container stop).
    Stop(ContainersArg),
    /// Restart containers (container restart).
    Restart(ContainersArg),
    /// Run a command in a running container (container exec).
    Exec(ExecArgs),
    /// Remove containers (container rm).
    Rmc(ContainerRemoveArgs),
    /// List images (image ls).
    Lsi,
    /// List containers (container ls).
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
    /// Inspect a volume (volume inspect).
    Isv(ObjectArg),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
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
    /// Start a stopped container (attached unless -d).
    Start(StartArgs),
    /// Stop running containers.
    Stop(ContainersArg),
    /// Stop and start containers again (detached).
    Restart(ContainersArg),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Remove containers.
    Rm(ContainerRemoveArgs),
    /// Rename a container.
    Rename {
        /// The container: ID, ID prefix or name.
        container: String,
        /// Its new name.
        name: String,
    },
    /// Change a container's command, user, environment, jail parameters or restart policy.
    Update(UpdateArgs),
    /// List containers.
    #[command(visible_alias = "list")]
    Ls(ContainerListArgs),
    /// Show everything about a container.
    Inspect(ObjectArg),
    /// Remove every stopped container that is not marked persist.
    Prune(ForceArg),
}

/// Network driver of a container.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
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

/// Restart policy of a container.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RestartArg {
    /// Never restarted by the daemon.
    No,
    /// Started whenever the daemon starts.
    OnStartup,
}

/// How a container is made.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the container.
    #[arg(long)]
    pub name: Option<String>,
    /// User the command runs as (name or uid[:gid]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Environment variable NAME=value (repeatable).
    #[arg(short, long = "env", value_name = "NAME=value")]
    pub env: Vec<String>,
    /// Jail parameter name=value (repeatable).
    #[arg(short = 'J', long = "jailparam", value_name = "PARAM")]
    pub jail_param: Vec<String>,
    /// Network driver.
    #[arg(short = 'l', long = "driver", value_enum, default_value = "host")]
    pub driver: DriverArg,
    /// Restart policy.
    #[arg(long, value_enum, default_value = "no")]
    pub restart: RestartArg,
    /// Keep the container when pruning.
    #[arg(long)]
    pub persist: bool,
    /// The image: ID, ID prefix or name[:tag], optionally @snapshot.
    pub image: String,
    /// Command and arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
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
    /// The container: ID, ID prefix or name.
    pub container: String,
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
    /// New restart policy.
    #[arg(long, value_enum)]
    pub restart: Option<RestartArg>,
    /// Keep the container when pruning (true or false).
    #[arg(long)]
    pub persist: Option<bool>,
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
    /// List networks.
    #[command(visible_alias = "list")]
    Ls,
    /// Show everything about a network.
    Inspect(ObjectArg),
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls,
    /// Show everything about a volume.
    Inspect(ObjectArg),
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
