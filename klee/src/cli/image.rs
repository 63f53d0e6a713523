//! `klee image` and `klee build`: how images are made, listed and removed.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{ContainerOptions, ObjectArg, RemoveArgs};
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image from a Dockerfile.
    #[command(after_long_help = BUILD_NOTES)]
    Build(Box<BuildArgs>),
    /// Create a base image from a tar archive or a ZFS dataset.
    Create(ImageCreateArgs),
    /// List images.
    #[command(visible_alias = "list")]
    Ls,
    /// Show everything about an image.
    Inspect(ObjectArg),
    /// Remove images.
    Rm(RemoveArgs),
    /// Give an image a name and tag (name[:tag], tag defaults to latest).
    Tag {
        /// The image: ID, ID prefix or name[:tag].
        source: String,
        /// The new name[:tag].
        nametag: String,
    },
    /// Remove images that no container or image is made from.
    Prune(PruneArgs),
}

/// How `image create` makes the image.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MethodArg {
    /// Download a tar archive from SOURCE (http://, https:// or file:// on the daemon's host).
    Fetch,
    /// Download the FreeBSD base system of the host's release (FreeBSD only).
    FetchAuto,
    /// Copy the ZFS dataset SOURCE.
    ZfsCopy,
    /// Clone the ZFS dataset SOURCE (the image depends on it).
    ZfsClone,
}

#[derive(Debug, Args)]
pub struct ImageCreateArgs {
    /// How to make the image.
    #[arg(value_enum)]
    pub method: MethodArg,
    /// URL (fetch) or ZFS dataset (zfs-copy, zfs-clone).
    pub source: Option<String>,
    /// Name and tag of the image, name[:tag].
    #[arg(short, long)]
    pub tag: Option<String>,
    /// Do not copy the host's /etc/resolv.conf into the image.
    #[arg(long)]
    pub no_dns: bool,
    /// Do not copy the host's /etc/localtime into the image.
    #[arg(long)]
    pub no_localtime: bool,
    /// Update the image with freebsd-update(8) (FreeBSD only).
    #[arg(long)]
    pub update: bool,
    /// fetch-auto: do not name the image FreeBSD-<version>:latest.
    #[arg(long)]
    pub no_autotag: bool,
}

/// The end of `klee build --help` and of its man pages.
pub(super) const BUILD_NOTES: &str = "\
PATH is read by kleened, on its own host: klee sends the absolute path of PATH (made absolute \
against klee's working directory), not the files in it, so klee and kleened must see the same \
directory there, as with the Python klee.

Each instruction runs in a build container, made as `klee create` makes a container from the \
container options above (-u, -e, -m, -J, -l, -n, --ip, --ip6), and starting from the Dockerfile's \
FROM image or from --from.

A failed build is removed (--rm, the default, as Docker does). With --no-rm it is kept as the \
image NAME:failed and its most recent snapshot is printed, to look into it with `klee run \
IMAGE@SNAPSHOT`. The Python klee keeps failed builds unless given --rm.

Ctrl-C cancels the build: klee closes the connection and kleened removes the build container \
and what it made.";

/// How an image is built.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and tag of the image, name[:tag], tag defaulting to latest [default: untagged].
    #[arg(short, long, value_name = "NAME[:TAG]")]
    pub tag: Option<String>,
    /// The Dockerfile, as a path relative to PATH.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "Dockerfile"
    )]
    pub file: String,
    /// Value of one of the Dockerfile's ARG variables (repeatable): NAME=value, or NAME alone for
    /// the value of NAME in klee's environment.
    #[arg(long = "build-arg", value_name = "NAME=value", value_parser = parse_build_arg)]
    pub build_args: Vec<(String, String)>,
    /// Print only the snapshots made, not the steps and their output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Remove a failed build, as Docker does (the default; the Python klee's is to keep it).
    #[arg(long, overrides_with = "no_rm")]
    pub rm: bool,
    /// Keep a failed build as the image NAME:failed.
    #[arg(long, overrides_with = "rm")]
    pub no_rm: bool,
    /// Start from this image instead of the Dockerfile's FROM: ID, ID prefix or name[:tag],
    /// optionally @snapshot.
    #[arg(long, value_name = "IMAGE")]
    pub from: Option<String>,
    /// Run every instruction, using no step cached by an earlier build.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub container: ContainerOptions,
    /// The build context: the directory the Dockerfile and the files it copies are in, on
    /// kleened's host.
    pub path: PathBuf,
}

/// `--build-arg NAME=value`, or `NAME` for the value of NAME in klee's environment (as Docker).
fn parse_build_arg(arg: &str) -> Result<(String, String), String> {
    let (name, value) = match arg.split_once('=') {
        Some((name, value)) => (name, value.to_owned()),
        None => (
            arg,
            std::env::var(arg).map_err(|_| {
                format!("{arg} is not set in the environment; give its value as {arg}=value")
            })?,
        ),
    };
    if name.is_empty() {
        return Err(format!("'{arg}' names no variable; expected NAME=value"));
    }
    Ok((name.to_owned(), value))
}
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove tagged images too, not only untagged ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}
