//! `kleened`: the daemon's command line. Reads the configuration, sets up logging and runs the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kleened::config::{Config, TargetOs, DEFAULT_CONFIG_PATH};

#[derive(Debug, Parser)]
#[command(name = "kleened", version, about = "The Kleene container daemon")]
struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_PATH, global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Print the OpenAPI document of the API and exit.
    Openapi,
    /// Prepare a FreeBSD host: kernel modules, boot settings, the root dataset.
    Init {
        /// Only look, and print the changes instead of making them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the host and the daemon's root; explain each finding with the command that fixes
    /// it. Exit status 0 when all is well, 1 with findings, 2 when the checks could not run.
    Doctor {
        /// Do the safe fixes (refused while the daemon runs: use `klee doctor --fix`), then
        /// check again.
        #[arg(long)]
        fix: bool,
    },
}

fn main() -> ExitCode {
    // The container runtime starts this binary again to set up namespaces single-threaded.
    #[cfg(target_os = "linux")]
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == kleened::platform::linux::helper::HELPER_ARG)
    {
        kleened::platform::linux::helper::main();
    }
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Openapi => {
            print!("{}", kleened::server::openapi::document());
            ExitCode::SUCCESS
        }
        Command::Run => run(&cli.config),
        Command::Init { dry_run } => init(&cli.config, dry_run),
        Command::Doctor { fix } => kleened::doctor::cli::main(&cli.config, fix),
    }
}

fn init(config_path: &std::path::Path, dry_run: bool) -> ExitCode {
    let config = match Config::load(config_path, TargetOs::current()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kleened: {err}");
            return ExitCode::FAILURE;
        }
    };
    let layout = match kleened::layout::Layout::new(&config.kleene_root) {
        Ok(layout) => layout,
        Err(err) => {
            eprintln!("kleened: invalid value for 'kleene_root': {err}");
            return ExitCode::FAILURE;
        }
    };
    let runner: std::sync::Arc<dyn kleene_runner::Runner> =
        std::sync::Arc::new(kleene_runner::SystemRunner::new());
    let zfs = zfs::Zfs::new(runner.clone()).with_programs(zfs::ZfsPrograms::host_default());
    if kleened::init::run(
        runner,
        &zfs,
        &layout,
        &kleened::init::Files {
            loader_conf: "/boot/loader.conf".into(),
            pf_template: config.pf_config_template_path.clone(),
        },
        dry_run,
        &mut std::io::stdout(),
    ) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// glibc gives every thread that allocates an arena of its own (up to eight per core) and keeps
/// what is freed in each: after bursts of work on the blocking pool's threads, most of the idle
/// daemon's heap was such retained arenas. Two arenas serve the runtime's few threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes the allocator's settings; it runs before the daemon starts any
    // thread.
    #[allow(unsafe_code)]
    let _ = unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2) };
}

fn run(config_path: &std::path::Path) -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    limit_malloc_arenas();
    let config = match Config::load(config_path, TargetOs::current()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kleened: {err}");
            return ExitCode::FAILURE;
        }
    };
    let _guard = match kleened::logging::init(&config) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("kleened: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kleened: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(kleened::daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("kleened: {err:#}");
            ExitCode::FAILURE
        }
    }
}
