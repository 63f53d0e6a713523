//! `/images/build`: reading a Dockerfile into typed instructions ([`dockerfile`]) and
//! substituting build variables into its lines without a shell ([`substitute`]), both pure; and
//! running the build ([`builder`], with its cache in `cache` and COPY in `copy`).

pub mod builder;
mod cache;
mod copy;
pub mod dockerfile;
mod state;
pub mod substitute;
