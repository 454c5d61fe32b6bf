//! Credentials, trust anchors, certificate verification and PEM loading.
