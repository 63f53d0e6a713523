//! `klee volume`: named volumes.

use clap::{Args, Subcommand};

use super::ForceArg;
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a ZFS dataset); one of that name that exists already is left as it is.
    Create(VolumeCreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls,
    /// Show everything about a volume and the containers that mount it.
    Inspect(VolumeArg),
    /// Remove volumes (stops at the first failure).
    Rm(VolumesArg),
    /// Remove every volume no container mounts.
    Prune(ForceArg),
}

#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// The most the volume may hold, as zfs(8) reads a size (500M, 10G): its ZFS quota
    /// [default: no limit].
    #[arg(short, long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Name of the volume: letters, digits, _, . and -, starting with a letter or digit.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct VolumeArg {
    /// Volume name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct VolumesArg {
    /// Volume names.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}
