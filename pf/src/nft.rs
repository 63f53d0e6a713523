//! The nftables ruleset for Linux.
