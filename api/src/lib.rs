//! Wire types of the Kleene API (version 0.1.1), shared by the `kleened` daemon and the `klee` client.
//!
//! The JSON shapes, field names and schema names follow the Kleened API so that every client written
//! for it (the published Python `klee` among them) works unchanged. With the `openapi` feature each
//! type also derives its OpenAPI schema; the daemon assembles the document from them.

pub mod address;
pub mod container;
pub mod de;
pub mod doctor;
pub mod error;
pub mod exec;
pub mod image;
pub mod info;
pub mod network;
pub mod volume;
pub mod websocket;

pub use address::{ApiAddress, ApiLocation, ApiScheme, ParseAddressError};
pub use container::{
    Container, ContainerConfig, ContainerInspect, ContainerSummary, ExitReason, LastExit,
    MountPoint, MountPointConfig, MountPointType, NetworkDriver, PortProtocol, PublishedPort,
    PublishedPortConfig, RestartPolicy,
};
pub use doctor::{DoctorReport, Finding, FindingStatus, FixOutcome};
pub use error::{ErrorResponse, IdResponse, ValidationError, ValidationErrors, ValidationSource};
pub use exec::{ExecConfig, ExecControl, ExecStartConfig, TtySize};
pub use image::{Image, ImageBuildConfig, ImageCreateConfig, ImageCreateMethod};
pub use info::Info;
pub use network::{EndPoint, EndPointConfig, Network, NetworkConfig, NetworkInspect, NetworkType};
pub use volume::{Volume, VolumeConfig, VolumeInspect};
pub use websocket::{MsgType, WebSocketMessage};

/// Version of the Kleened API this crate speaks, as advertised in the OpenAPI document.
pub const API_VERSION: &str = "0.1.1";

/// Where kleened listens and klee connects when nothing else is configured.
pub const DEFAULT_HOST: &str = "http:///var/run/kleened.sock";
