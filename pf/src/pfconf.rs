//! pf.conf rules for FreeBSD (written by the pf.conf renderer's author; see the crate docs).
