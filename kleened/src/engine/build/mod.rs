//! The pure half of `/images/build`: reading a Dockerfile into typed instructions
//! ([`dockerfile`]) and substituting build variables into its lines without a shell
//! ([`substitute`]). Nothing here touches the host; the build engine drives both.

pub mod dockerfile;
pub mod substitute;
