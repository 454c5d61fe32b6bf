#!/usr/bin/env bash
# The main job: an nbtls TLS server with a generated certificate when none is
# given. LISTEN (default 127.0.0.1:4433) sets the address; extra arguments go to
# `nbtls server` (e.g. --cert F --key F, --echo).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release -p nbtls-cli
mode=(--http)
for a in "$@"; do
    case "$a" in --echo|--http|--sink|--send) mode=() ;; esac
done
exec target/release/nbtls server --listen "${LISTEN:-127.0.0.1:4433}" "${mode[@]}" "$@"
