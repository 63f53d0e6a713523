//! Attaching to a process over `/exec/start`: its output to stdout as it comes, this terminal's
//! input to it with `-i` (in raw mode with `-t`, always restored), and its exit code as klee's.
//! With `control` in the start configuration (kleened's addition to the API), input goes as
//! binary frames, the end of input as an `eof` message (so `echo hi | klee run -i ... cat` ends),
//! and every size change of this terminal (SIGWINCH) as a `resize` message.
//!
//! The daemon keeps an attached process running when its client goes away (as the reference
//! does); so klee asks for the stop itself: SIGINT or SIGTERM to an attached klee (outside raw
//! mode, where Ctrl-C is the process's input) sends `POST /exec/{id}/stop` (SIGTERM to the
//! process, SIGKILL at the second), and klee follows the process to its end and exit code.

use std::io::{IsTerminal, Read, Write};

use futures_util::{SinkExt, StreamExt};
use kleene_api::{ExecControl, ExecStartConfig, MsgType, TtySize, WebSocketMessage};
use tokio_tungstenite::tungstenite::Message;

use crate::connection::{ClientError, Connection};

/// How to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Start and return.
    Detached,
    /// Show the output.
    Output,
    /// Show the output and send this terminal's input; `raw` puts the terminal in raw mode.
    Interactive { raw: bool },
}

/// Puts the terminal in raw mode until dropped.
struct RawMode;

impl RawMode {
    fn enable() -> Option<RawMode> {
        crossterm::terminal::enable_raw_mode()
            .ok()
            .map(|()| RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// This terminal's size, when stdout is one.
pub fn terminal_size() -> Option<TtySize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .map(|(cols, rows)| TtySize { rows, cols })
}

/// What the stdin reader hands over.
enum Input {
    Bytes(Vec<u8>),
    End,
}

/// The exit code at the end of `... exited with exit-code N`.
pub fn exit_code_of(message: &str) -> Option<i32> {
    message
        .rsplit_once("exit-code ")
        .and_then(|(_, code)| code.trim().parse().ok())
}

/// Starts the exec instance and follows it; answers the process's exit code (0 when detached).
pub async fn run(
    conn: &Connection,
    start: &ExecStartConfig,
    mode: Attach,
) -> Result<i32, ClientError> {
    let mut socket = conn.websocket("/exec/start").await?;
    let config = serde_json::to_string(start).map_err(|e| ClientError::Settings(e.to_string()))?;
    let lost = |e: tokio_tungstenite::tungstenite::Error| ClientError::Unreachable {
        host: conn.host(),
        reason: format!("connection lost: {e}"),
    };
    socket.send(Message::text(config)).await.map_err(lost)?;
    let (mut sink, mut stream) = socket.split();

    let mut raw = None;
    let (input_tx, mut input_rx) = tokio::sync::mpsc::channel::<Input>(16);
    // Size changes of this terminal, for a process on a terminal of its own.
    let mut resized = match (start.control, start.tty_size) {
        (true, Some(_)) => {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
        }
        _ => None,
    };
    let control =
        |message: ExecControl| Message::text(serde_json::to_string(&message).unwrap_or_default());
    let mut interrupts = (mode != Attach::Detached).then(Interrupts::new).flatten();
    let mut stops_asked = 0;
    let mut started = false;
    let mut stdout = std::io::stdout();
    let ending = loop {
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) if !started => {
                    match serde_json::from_str::<WebSocketMessage>(text.as_str()) {
                        Ok(m) if m.msg_type == MsgType::Starting => {
                            started = true;
                            if let Attach::Interactive { raw: want_raw } = mode {
                                if want_raw && std::io::stdin().is_terminal() {
                                    raw = RawMode::enable();
                                }
                                spawn_stdin_reader(input_tx.clone());
                            }
                        }
                        _ => print_bytes(&mut stdout, text.as_bytes()),
                    }
                }
                Some(Ok(Message::Text(text))) => print_bytes(&mut stdout, text.as_bytes()),
                Some(Ok(Message::Binary(bytes))) => print_bytes(&mut stdout, &bytes),
                Some(Ok(Message::Close(frame))) => {
                    break frame.map(|f| (u16::from(f.code), serde_json::from_str::<WebSocketMessage>(f.reason.as_str()).ok()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            },
            Some(input) = input_rx.recv() => {
                let frame = match input {
                    Input::Bytes(bytes) => Message::binary(bytes),
                    Input::End if start.control => control(ExecControl::Eof),
                    Input::End => continue,
                };
                if sink.send(frame).await.is_err() {
                    break None;
                }
            }
            Some(()) = async { interrupts.as_mut()?.next().await }, if raw.is_none() => {
                stops_asked += 1;
                let force = stops_asked > 1;
                // The exec ID is the daemon's own, a path segment as it is.
                let path = format!(
                    "/exec/{}/stop?force_stop={force}&stop_container=false",
                    start.exec_id
                );
                // A process that outlives the SIGTERM is still followed: a second interrupt kills it.
                if let Err(err) = conn.call::<kleene_api::IdResponse>(http::Method::POST, &path, None).await {
                    eprintln!("could not stop the process: {err}");
                }
            }
            Some(()) = async { resized.as_mut()?.recv().await } => {
                if let Some(size) = terminal_size() {
                    if sink.send(control(ExecControl::Resize(size))).await.is_err() {
                        break None;
                    }
                }
            }
        }
    };
    drop(raw);
    let _ = stdout.flush();
    match ending {
        Some((1001, _)) if mode == Attach::Detached => Ok(0),
        Some((_, Some(message))) if message.msg_type == MsgType::Closing => {
            if mode == Attach::Detached {
                return Ok(0);
            }
            exit_code_of(&message.message).ok_or_else(|| ClientError::Protocol {
                host: conn.host(),
                reason: message.message,
            })
        }
        Some((_, Some(message))) => Err(ClientError::Failed(message.message)),
        Some((code, None)) => Err(ClientError::Failed(format!(
            "kleened closed the connection with code {code}"
        ))),
        None => Err(ClientError::Unreachable {
            host: conn.host(),
            reason: "the connection was lost before the process ended".into(),
        }),
    }
}

/// SIGINT and SIGTERM, while klee follows a process.
struct Interrupts {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn new() -> Option<Interrupts> {
        use tokio::signal::unix::{signal, SignalKind};
        Some(Interrupts {
            interrupt: signal(SignalKind::interrupt()).ok()?,
            terminate: signal(SignalKind::terminate()).ok()?,
        })
    }

    async fn next(&mut self) -> Option<()> {
        tokio::select! {
            got = self.interrupt.recv() => got,
            got = self.terminate.recv() => got,
        }
    }
}

fn print_bytes(stdout: &mut std::io::Stdout, bytes: &[u8]) {
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
}

/// Reads stdin on a thread (it blocks) and hands the bytes over; says when it ended.
fn spawn_stdin_reader(tx: tokio::sync::mpsc::Sender<Input>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(Input::End);
                    break;
                }
                Ok(n) => {
                    if tx.blocking_send(Input::Bytes(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes_come_from_the_closing_message() {
        assert_eq!(
            super::exit_code_of("executable abc and its container exited with exit-code 3"),
            Some(3)
        );
        assert_eq!(
            super::exit_code_of("abc has exited with exit-code 143"),
            Some(143)
        );
        assert_eq!(super::exit_code_of("image created"), None);
    }
}
