//! The one place that calls the crypto crate (aws-lc-rs).
pub mod sign;
