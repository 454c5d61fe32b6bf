#!/usr/bin/env bash
# The README's main command: build tlsproxy (release) and run it in server mode,
# terminating TLS on $LISTEN (default 127.0.0.1:8443) and forwarding plain TCP to
# $UPSTREAM (default 127.0.0.1:8080). Without -C/-K a self-signed P-256 certificate
# is generated at start-up and its SHA-256 fingerprint is printed.
#
# On a fresh machine nothing listens on the default upstream: when UPSTREAM is not
# set and 127.0.0.1:8080 is free, a demo upstream (python3's http.server serving
# this repository, read-only) is started for the proxy's lifetime, so
#   scripts/run.sh   then   curl -k https://127.0.0.1:8443/README.md
# works with no other set-up. Extra arguments go to tlsproxy, e.g.
#   scripts/run.sh --save-cert /tmp/proxy.pem -d
#   LISTEN=0.0.0.0:443 UPSTREAM=10.0.0.5:80 scripts/run.sh -C chain.pem -K key.pem
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo build --release -p tlsproxy
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/tlsproxy"

demo=""
if [ -z "${UPSTREAM:-}" ] && ! (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
    echo "run.sh: no upstream given and 127.0.0.1:8080 is free: starting a demo HTTP upstream there" >&2
    python3 -m http.server 8080 --bind 127.0.0.1 --directory "$root" >/dev/null 2>&1 &
    demo=$!
    for _ in $(seq 50); do
        (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && break
        sleep 0.1
    done
fi

"$bin" -s -l "${LISTEN:-127.0.0.1:8443}" -c "${UPSTREAM:-127.0.0.1:8080}" "$@" &
proxy=$!
# SIGINT/SIGTERM reach tlsproxy (it drains and exits 0); the demo upstream goes with it.
trap 'kill -TERM "$proxy" 2>/dev/null || true' INT TERM
status=0
wait "$proxy" || status=$?
# `wait` returns early when a trapped signal arrives: wait for the drain too.
if kill -0 "$proxy" 2>/dev/null; then wait "$proxy" || status=$?; fi
[ -n "$demo" ] && kill "$demo" 2>/dev/null || true
exit "$status"
