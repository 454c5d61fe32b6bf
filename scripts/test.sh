#!/usr/bin/env bash
# The project's one test command: installs the interop peers if missing, then runs every
# test in the workspace (unit, integration, binaries and doc tests).
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh -p nbtls -- interop`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# shellcheck source=scripts/install-peers.sh
. "$root/scripts/install-peers.sh"

echo "== peers"
install_peers

echo "== cargo test"
# Plain `cargo test --workspace` runs lib, bins, tests and doc tests.
cargo test --workspace "$@"
