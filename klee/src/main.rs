//! `klee`: the command-line client of kleened.
//!
//! Exit codes: 0 on success, 1 when kleened answers with an error (its message is printed) or the
//! answer cannot be understood, 2 when kleened cannot be reached (or the command line is wrong),
//! 130 when a build is interrupted with Ctrl-C.

mod attach;
mod cli;
mod commands;
mod connection;
#[cfg(test)]
mod fake_daemon;
mod generate;
mod mount;
mod output;
mod publish;
mod session;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::connection::{Connection, TlsOptions};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // What is generated from the command line needs no daemon.
    match &cli.command {
        Command::Completion { shell } => {
            generate::completion(*shell, &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { dir } => {
            return match generate::write_man_pages(dir) {
                Ok(written) => {
                    println!("{} man pages written to {}", written.len(), dir.display());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("klee: cannot write the man pages: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let tls = TlsOptions {
        verify: cli.tlsverify,
        ca_cert: cli.tlscacert.clone(),
        cert: cli.tlscert.clone(),
        key: cli.tlskey.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("klee: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let conn = Connection::new(&cli.host, &tls)?;
        commands::run(cli.command, &conn, commands::Output { json: cli.json }).await
    });
    // The stdin reader of an interactive session may still block in read(2); do not wait for it.
    runtime.shutdown_background();
    match result {
        // `run`, `start` and `exec` exit with the container process's code.
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(255)),
        Err(err) => {
            if !matches!(err, connection::ClientError::Reported) {
                eprintln!("klee: {}", output::printable(err.to_string().trim_end()));
            }
            ExitCode::from(err.exit_code())
        }
    }
}
