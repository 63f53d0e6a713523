//! What each command does: build the request, call the daemon, render the answer.

mod containers;
mod images;
mod networks;
mod volumes;

use http::Method;
use serde::de::DeserializeOwned;

use crate::cli::{Command, ContainerCommand, ImageCommand, NetworkCommand, VolumeCommand};
use crate::connection::{ClientError, Connection};

/// Output options shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Print the daemon's JSON instead of tables.
    pub json: bool,
}

/// Runs one command.
pub async fn run(command: Command, conn: &Connection, out: Output) -> Result<(), ClientError> {
    match command {
        Command::Image(ImageCommand::Ls) | Command::Lsi => images::list(conn, out).await,
        Command::Image(ImageCommand::Inspect(arg)) | Command::Isi(arg) => {
            images::inspect(conn, &arg.name).await
        }
        Command::Container(ContainerCommand::Ls(args)) | Command::Lsc(args) => {
            containers::list(conn, args.all, out).await
        }
        Command::Container(ContainerCommand::Inspect(arg)) | Command::Isc(arg) => {
            containers::inspect(conn, &arg.name).await
        }
        Command::Network(NetworkCommand::Ls) | Command::Lsn => networks::list(conn, out).await,
        Command::Network(NetworkCommand::Inspect(arg)) | Command::Isn(arg) => {
            networks::inspect(conn, &arg.name).await
        }
        Command::Volume(VolumeCommand::Ls) | Command::Lsv => volumes::list(conn, out).await,
        Command::Volume(VolumeCommand::Inspect(arg)) | Command::Isv(arg) => {
            volumes::inspect(conn, &arg.name).await
        }
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

fn print_json(value: &serde_json::Value) {
    // Serialising a parsed JSON value cannot fail.
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// A path segment for an identifier typed by the user.
fn segment(identifier: &str) -> String {
    const RESERVED: &[char] = &['/', '?', '#', '%', ' '];
    identifier
        .chars()
        .map(|c| {
            if RESERVED.contains(&c) {
                format!("%{:02X}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_cannot_leave_their_path_segment() {
        assert_eq!(super::segment("base:latest"), "base:latest");
        assert_eq!(super::segment("../x?y"), "..%2Fx%3Fy");
    }
}
