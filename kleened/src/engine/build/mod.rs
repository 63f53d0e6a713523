//! `/images/build`: reading a Dockerfile into typed instructions ([`dockerfile`]) and
//! substituting build variables into its lines without a shell ([`substitute`]), both pure; and
//! running the build ([`run`]).

pub mod dockerfile;
pub mod run;
pub mod substitute;
