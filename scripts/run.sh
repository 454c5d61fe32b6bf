#!/usr/bin/env bash
# The README's main command: build tlsproxy (release) and run it in server mode,
# terminating TLS on $LISTEN (default 127.0.0.1:8443) and forwarding plain TCP to
# $UPSTREAM (default 127.0.0.1:8080), which must be listening. Without -C/-K a
# self-signed P-256 certificate is generated at start-up and its SHA-256 fingerprint
# is printed. Extra arguments go to tlsproxy, e.g.
#   scripts/run.sh --save-cert /tmp/proxy.pem -d
#   LISTEN=0.0.0.0:443 UPSTREAM=10.0.0.5:80 scripts/run.sh -C chain.pem -K key.pem
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo build --release -p tlsproxy
# `cargo run` finds the binary wherever the target dir is, and on Unix it execs it,
# so signals (Ctrl-C, SIGTERM: drain and exit) reach tlsproxy itself.
exec cargo run --quiet --release -p tlsproxy -- -s -l "${LISTEN:-127.0.0.1:8443}" -c "${UPSTREAM:-127.0.0.1:8080}" "$@"
