//! The command line, as clap parses it. No behaviour here: `commands` acts on what this produces.

mod container;
mod image;
mod network;
mod volume;

pub use container::*;
use image::BUILD_NOTES;
pub use image::*;
pub use network::*;
pub use volume::*;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

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

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// IDs, ID prefixes or names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ForceArg {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
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
