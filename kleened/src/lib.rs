//! kleened, the Kleene container daemon: its configuration, metadata store, domain logic and API
//! server. `main.rs` wires them together; everything here is usable from tests in-process.

pub mod config;
pub mod daemon;
pub mod doctor;
pub mod engine;
pub mod init;
pub mod layout;
pub mod logging;
pub mod platform;
pub mod server;
pub mod store;
