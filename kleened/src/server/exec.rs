//! Exec routes: create and stop exec instances, and the `/exec/start` websocket that runs them,
//! streaming the process's output as frames and the client's frames to its input.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use kleene_api::websocket::{
    CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR,
};
use kleene_api::{
    ErrorResponse, ExecConfig, ExecControl, ExecStartConfig, IdResponse, MsgType, ValidationErrors,
    WebSocketMessage,
};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::ws::{Message, WebSocket};
use warp::{Filter, Reply};

use super::reply::{self, Operation};
use super::request::{bool_param, json_body, query};
use super::{with_engine, ws};
use crate::engine::{Client, ClientEvent, Engine};

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
    reply::respond(
        Operation::ExecCreate,
        StatusCode::CREATED,
        engine.create_exec(config).await,
    )
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
        (Ok(force), Ok(container)) => reply::respond(
            Operation::ExecStop,
            StatusCode::OK,
            engine.stop_exec(exec_id, force, container).await,
        ),
        (Err(errors), _) | (_, Err(errors)) => reply::invalid(errors),
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
        .start_exec(&config.exec_id, config.start_container, config.tty_size)
        .await
    {
        Ok(running) => running,
        Err(err) => {
            let reason = err.to_string();
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
    let mut client = Socket {
        tx: &mut tx,
        rx: &mut rx,
        frames: Utf8Frames::default(),
        control: config.control,
    };
    let message = engine.attach(running, &mut client).await;
    ws::close(
        &mut tx,
        CLOSE_NORMAL,
        &WebSocketMessage::new(MsgType::Closing, message, ""),
    )
    .await;
}

/// The attached client: output as text frames (binary where it is not UTF-8), the client's frames
/// as input; with `control`, text frames are [`ExecControl`] messages and binary frames input.
struct Socket<'a> {
    tx: &'a mut ws::Sender,
    rx: &'a mut ws::Receiver,
    frames: Utf8Frames,
    control: bool,
}

impl Client for Socket<'_> {
    async fn send(&mut self, chunk: &[u8]) -> Result<(), ()> {
        match self.frames.push(chunk) {
            Some(frame) => self.tx.send(frame).await.map_err(drop),
            None => Ok(()),
        }
    }

    async fn next(&mut self) -> Option<ClientEvent> {
        loop {
            return match self.rx.next().await {
                Some(Ok(m)) if m.is_text() && self.control => {
                    match serde_json::from_slice::<ExecControl>(m.as_bytes()) {
                        Ok(ExecControl::Eof) => Some(ClientEvent::EndOfInput),
                        Ok(ExecControl::Resize(size)) => {
                            Some(ClientEvent::Resize(size.rows, size.cols))
                        }
                        Err(err) => {
                            tracing::debug!(error = %err, "unknown control message");
                            continue;
                        }
                    }
                }
                Some(Ok(m)) if m.is_text() || m.is_binary() => {
                    Some(ClientEvent::Input(m.as_bytes().to_vec()))
                }
                Some(Ok(m)) if m.is_close() => Some(ClientEvent::Gone),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => Some(ClientEvent::Gone),
            };
        }
    }

    async fn flush(&mut self) {
        if let Some(frame) = self.frames.flush() {
            let _ = self.tx.send(frame).await;
        }
    }
}

/// Turns output chunks into text frames, keeping a UTF-8 sequence cut at a chunk's end for the next
/// chunk; output that is not UTF-8 goes out as binary frames.
#[derive(Debug, Default)]
struct Utf8Frames {
    pending: Vec<u8>,
}

impl Utf8Frames {
    fn push(&mut self, chunk: &[u8]) -> Option<Message> {
        if self.pending.is_empty() {
            // The usual case: nothing kept from the last chunk, so no copy into `pending`.
            return self.frame(chunk);
        }
        let mut joined = std::mem::take(&mut self.pending);
        joined.extend_from_slice(chunk);
        self.frame(&joined)
    }

    /// The frame of `bytes`: text when they are UTF-8; an incomplete character at the end is
    /// kept for the next chunk and what is complete goes out; binary when they are not UTF-8.
    fn frame(&mut self, bytes: &[u8]) -> Option<Message> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Some(Message::text(text)),
            Err(err) if err.error_len().is_none() && bytes.len() - err.valid_up_to() < 4 => {
                let valid = err.valid_up_to();
                self.pending.extend_from_slice(&bytes[valid..]);
                std::str::from_utf8(&bytes[..valid])
                    .ok()
                    .filter(|text| !text.is_empty())
                    .map(Message::text)
            }
            Err(_) => Some(Message::binary(bytes.to_vec())),
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
