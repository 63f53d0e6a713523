//! Exec routes: create and stop exec instances, and the `/exec/start` websocket that runs them,
//! streaming the process's output as frames and the client's frames to its input.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use kleene_api::websocket::{
    CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR,
};
use kleene_api::{
    ErrorResponse, ExecConfig, ExecStartConfig, IdResponse, MsgType, ValidationErrors,
    WebSocketMessage,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::ws::{Message, WebSocket};
use warp::{Filter, Reply};

use super::request::{bool_param, json_body, query};
use super::{error, with_engine, ws};
use crate::engine::Engine;
use crate::platform::io::FdStream;

/// How long output is still read after the process exited, for a process that left it open.
const OUTPUT_LINGER: Duration = Duration::from_millis(200);

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let create = warp::path!("exec" / "create")
        .and(warp::post())
        .and(json_body::<ExecConfig>())
        .and(with_engine(engine.clone()))
        .then(create);
    let stop = warp::path!("exec" / String / "stop")
        .and(warp::post())
        .and(query())
        .and(with_engine(engine.clone()))
        .then(stop);
    let start = warp::path!("exec" / "start")
        .and(warp::ws())
        .and(with_engine(engine))
        .map(|upgrade: warp::ws::Ws, engine: Arc<Engine>| {
            upgrade
                .on_upgrade(move |socket| start(socket, engine))
                .into_response()
        });
    create.or(stop).unify().or(start).unify().boxed()
}

/// Create an exec instance in a container (which need not run yet).
#[utoipa::path(
    post, path = "/exec/create", operation_id = "Exec.Create", tag = "Exec",
    request_body = ExecConfig,
    responses(
        (status = 201, description = "the exec instance's ID", body = IdResponse),
        (status = 404, description = "no such container", body = ErrorResponse),
        (status = 422, description = "the body does not fit the schema", body = ValidationErrors),
    )
)]
pub(super) async fn create(config: ExecConfig, engine: Arc<Engine>) -> Response {
    error::respond(StatusCode::CREATED, engine.create_exec(config).await)
}

/// Stop an exec instance's process (SIGTERM, or SIGKILL with `force_stop`), or its whole container
/// with `stop_container`.
#[utoipa::path(
    post, path = "/exec/{exec_id}/stop", operation_id = "Exec.Stop", tag = "Exec",
    params(
        ("exec_id" = String, Path, description = "the exec instance"),
        ("force_stop" = bool, Query, description = "SIGKILL instead of SIGTERM"),
        ("stop_container" = bool, Query, description = "stop the whole container"),
    ),
    responses(
        (status = 200, description = "the exec instance's ID", body = IdResponse),
        (status = 404, description = "no such exec instance, or it cannot be stopped", body = ErrorResponse),
        (status = 422, description = "a parameter is missing or not a boolean", body = ValidationErrors),
    )
)]
pub(super) async fn stop(
    exec_id: String,
    params: HashMap<String, String>,
    engine: Arc<Engine>,
) -> Response {
    let flag = |name: &str| match bool_param(&params, name) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(ValidationErrors::single(
            format!("/{name}"),
            format!("missing required parameter '{name}'"),
        )),
        Err(errors) => Err(errors),
    };
    match (flag("force_stop"), flag("stop_container")) {
        (Ok(force), Ok(container)) => error::respond(
            StatusCode::OK,
            engine.stop_exec(exec_id, force, container).await,
        ),
        (Err(errors), _) | (_, Err(errors)) => error::invalid(errors),
    }
}

/// Start an exec instance (websocket). The client sends an `ExecStartConfig` frame. Attached: the
/// server answers `starting`, streams the output, writes the client's frames to the process's
/// input, and closes with 1000 and the exit code in the message. Detached: close 1001 at once.
/// Refusals close with 1002 (bad configuration) or 1011 (cannot start) before any frame.
#[utoipa::path(
    get, path = "/exec/start", operation_id = "Exec.Start", tag = "Exec",
    request_body(content = ExecStartConfig, description = "sent as the first websocket frame"),
    responses((status = 101, description = "websocket; frames are WebSocketMessage and output", body = WebSocketMessage))
)]
pub(super) async fn start(socket: WebSocket, engine: Arc<Engine>) {
    let (mut tx, mut rx) = socket.split();
    let config: ExecStartConfig = match ws::read_config(&mut rx).await {
        Ok(config) => config,
        Err(refusal) => {
            let message = format!("{}: {}", refusal.summary, refusal.detail);
            let reason = WebSocketMessage::new(MsgType::Error, message, "");
            return ws::close(&mut tx, CLOSE_PROTOCOL_ERROR, &reason).await;
        }
    };
    let running = match engine
        .start_exec(&config.exec_id, config.start_container)
        .await
    {
        Ok(running) => running,
        Err(reason) => {
            tracing::info!(exec = %config.exec_id, %reason, "exec start refused");
            // The reason alone, so that it fits the close frame; clients show it as the error.
            return ws::close(
                &mut tx,
                CLOSE_INTERNAL_ERROR,
                &WebSocketMessage::new(MsgType::Error, reason, ""),
            )
            .await;
        }
    };
    if !config.attach {
        engine.detach(running);
        let message = "succesfully started execution instance in detached mode";
        return ws::close(
            &mut tx,
            CLOSE_GOING_AWAY,
            &WebSocketMessage::new(MsgType::Closing, message, ""),
        )
        .await;
    }
    let _ = ws::send_message(&mut tx, &WebSocketMessage::new(MsgType::Starting, "", "")).await;
    let (io, mut child, recorder) = running.into_parts();
    let status = attach(&mut tx, &mut rx, io.output, io.input, &mut child).await;
    let code = recorder.record(status);
    let message = engine
        .finish_exec(
            &recorder.exec_id,
            &recorder.container_id,
            recorder.first,
            code,
        )
        .await;
    ws::close(
        &mut tx,
        CLOSE_NORMAL,
        &WebSocketMessage::new(MsgType::Closing, message, ""),
    )
    .await;
}

/// Streams until the process ended and its output is read. A client that goes away gets its
/// process terminated (SIGTERM), as a detached start would have been asked for explicitly.
async fn attach(
    tx: &mut ws::Sender,
    rx: &mut ws::Receiver,
    mut reader: FdStream,
    mut writer: FdStream,
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut frames = Utf8Frames::default();
    let (mut client, mut eof) = (true, false);
    let mut status = None;
    let linger = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(linger);
    let terminate = |child: &tokio::process::Child| {
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    };
    while !(eof && status.is_some()) {
        tokio::select! {
            read = reader.read(&mut buf), if !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => {
                    if let Some(frame) = frames.push(&buf[..n]) {
                        // Awaiting the send applies back-pressure: a slow client slows the process.
                        if client && tx.send(frame).await.is_err() {
                            client = false;
                            terminate(child);
                        }
                    }
                }
            },
            exit = child.wait(), if status.is_none() => {
                status = Some(exit);
                linger.as_mut().reset(tokio::time::Instant::now() + OUTPUT_LINGER);
            },
            () = &mut linger, if status.is_some() && !eof => eof = true,
            message = rx.next(), if client => match message {
                Some(Ok(m)) if m.is_text() || m.is_binary() => {
                    let _ = writer.write_all(m.as_bytes()).await;
                }
                Some(Ok(m)) if m.is_close() => {
                    client = false;
                    terminate(child);
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    client = false;
                    terminate(child);
                }
            },
        }
    }
    if let Some(frame) = frames.flush() {
        if client {
            let _ = tx.send(frame).await;
        }
    }
    status.unwrap_or_else(|| Err(std::io::Error::other("no exit status")))
}

/// Turns output chunks into text frames, keeping a UTF-8 sequence cut at a chunk's end for the next
/// chunk; output that is not UTF-8 goes out as binary frames.
#[derive(Debug, Default)]
struct Utf8Frames {
    pending: Vec<u8>,
}

impl Utf8Frames {
    fn push(&mut self, chunk: &[u8]) -> Option<Message> {
        self.pending.extend_from_slice(chunk);
        match std::str::from_utf8(&self.pending) {
            Ok(text) => {
                let frame = Message::text(text);
                self.pending.clear();
                Some(frame)
            }
            Err(err) if err.error_len().is_none() && self.pending.len() - err.valid_up_to() < 4 => {
                // An incomplete character at the end: send what is complete, keep the rest.
                let valid = err.valid_up_to();
                if valid == 0 {
                    return None;
                }
                let rest = self.pending.split_off(valid);
                let text = String::from_utf8(std::mem::replace(&mut self.pending, rest)).ok()?;
                Some(Message::text(text))
            }
            Err(_) => Some(Message::binary(std::mem::take(&mut self.pending))),
        }
    }

    fn flush(&mut self) -> Option<Message> {
        (!self.pending.is_empty()).then(|| Message::binary(std::mem::take(&mut self.pending)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_cut_between_chunks_are_joined() {
        let mut frames = Utf8Frames::default();
        let text = "héllo".as_bytes();
        let first = frames.push(&text[..2]).unwrap();
        assert_eq!(first.to_str().unwrap(), "h");
        let second = frames.push(&text[2..]).unwrap();
        assert_eq!(second.to_str().unwrap(), "éllo");
        assert!(frames.flush().is_none());
    }

    #[test]
    fn invalid_utf8_goes_out_as_binary() {
        let mut frames = Utf8Frames::default();
        let frame = frames.push(&[0xff, 0xfe, b'a']).unwrap();
        assert!(frame.is_binary());
        assert_eq!(frame.as_bytes(), &[0xff, 0xfe, b'a']);
    }
}
