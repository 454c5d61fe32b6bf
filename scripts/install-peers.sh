#!/usr/bin/env bash
# Install the interop peers (OpenSSL and GnuTLS command-line tools, curl) when any is missing.
# Sourced by scripts/test.sh and .ci/run; can also be run on its own.
# Debian/Ubuntu only (apt-get); on other systems install openssl, gnutls-bin and curl yourself.

install_peers() {
    local missing=()
    local tool
    for tool in openssl gnutls-cli gnutls-serv curl; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "peers present: $(openssl version | head -n1); $(gnutls-cli --version | head -n1); $(curl --version | head -n1)"
        return 0
    fi
    echo "missing peers: ${missing[*]}; installing openssl, gnutls-bin and curl"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: apt-get not found; install openssl, gnutls-bin and curl by hand" >&2
        return 1
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "error: not root and no sudo; install openssl, gnutls-bin and curl by hand" >&2
            return 1
        fi
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends openssl gnutls-bin curl
    for tool in openssl gnutls-cli gnutls-serv curl; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "error: $tool still missing after install" >&2
            return 1
        fi
    done
    echo "peers installed: $(openssl version | head -n1); $(gnutls-cli --version | head -n1); $(curl --version | head -n1)"
}

# Run directly (not sourced): install now.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    install_peers
fi
