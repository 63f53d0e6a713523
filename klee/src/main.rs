//! `klee`: the command-line client of kleened.
//!
//! Exit codes: 0 on success, 1 when kleened answers with an error (its message is printed) or the
//! answer cannot be understood, 2 when kleened cannot be reached (or the command line is wrong).

mod cli;
mod commands;
mod connection;
mod output;
mod session;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::connection::{Connection, TlsOptions};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !matches!(err, connection::ClientError::Reported) {
                eprintln!("klee: {}", err.to_string().trim_end());
            }
            ExitCode::from(err.exit_code())
        }
    }
}
