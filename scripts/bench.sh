#!/usr/bin/env bash
# nbtls beside OpenSSL and GnuTLS (issue 6), with one method for all three:
# shared/bench/tlsperf.c measures OpenSSL and GnuTLS, crates/nbtls-perf
# measures nbtls with the same modes, cases, payload sizes and output lines.
#
#   scripts/bench.sh            # about 3-5 minutes on 2 cores
#
# Steps: install libssl-dev and libgnutls28-dev if missing (apt-get), build
# tlsperf from ../shared/bench/tlsperf.c, make the test PKI with
# ../shared/bench/gen-certs.sh in a temporary directory, build nbtls-perf
# (release), run every mode for the three libraries interleaved, REPS times
# (medians), and print ONE markdown table with nbtls/OpenSSL and
# nbtls/GnuTLS ratios. Raw output lines are kept in $RAW if set.
#
# Knobs (the same for all three libraries): REPS=3 HS_SECS=2 MEMBULK_MB=512
# BULK_MB=512 MEM_N=1000 DTLS_SECS=2 PROXY_MB=512 (dtls tls12-ec: DTLS 1.2 handshakes over
# two connected UDP sockets, no cookie exchange in any of the three).
# Not a test: scripts/test.sh does not run it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

REPS="${REPS:-3}"
HS_SECS="${HS_SECS:-2}"
MEMBULK_MB="${MEMBULK_MB:-512}"
BULK_MB="${BULK_MB:-512}"
MEM_N="${MEM_N:-1000}"
DTLS_SECS="${DTLS_SECS:-2}"
PROXY_MB="${PROXY_MB:-512}"

shared="$root/../shared/bench"
tlsperf_src="$shared/tlsperf.c"
gen_certs="$shared/gen-certs.sh"
for f in "$tlsperf_src" "$gen_certs"; do
    if [ ! -f "$f" ]; then
        echo "error: $f not found; bench.sh needs the shared/ checkout beside the repository" >&2
        exit 1
    fi
done

# ---- build dependencies of tlsperf (as scripts/install-peers.sh does for the peers)
install_devs() {
    local missing=() pkg
    if ! command -v dpkg >/dev/null 2>&1; then
        return 0 # not Debian: the compiler says what is missing
    fi
    for pkg in gcc libssl-dev libgnutls28-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    echo "installing ${missing[*]}" >&2
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: apt-get not found; install ${missing[*]} by hand" >&2
        return 1
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "error: not root and no sudo; install ${missing[*]} by hand" >&2
            return 1
        fi
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}" >&2
}
install_devs

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
raw="${RAW:-$work/raw.txt}"
: >"$raw"

echo "== building tlsperf and certificates" >&2
gcc -O2 -Wall -o "$work/tlsperf" "$tlsperf_src" -lssl -lcrypto -lgnutls
cp "$gen_certs" "$work/gen-certs.sh"
bash "$work/gen-certs.sh" >/dev/null 2>&1 || { echo "error: gen-certs.sh failed" >&2; exit 1; }
export CERTS="$work/certs"

echo "== building nbtls-perf (release)" >&2
cargo build --release -p nbtls-perf -p tlsproxy >&2
nbperf="${CARGO_TARGET_DIR:-$root/target}/release/nbtls-perf"

# run LIB MODE CASE ARG REP: output lines tagged "LIB|MODE|CASE|REP|line".
run() {
    local lib=$1 mode=$2 cs=$3 arg=$4 rep=$5 out
    if [ "$lib" = nbtls ]; then
        out="$("$nbperf" "$mode" "$cs" "$arg")" || { echo "error: nbtls-perf $mode $cs failed" >&2; exit 1; }
    else
        out="$("$work/tlsperf" "$lib" "$mode" "$cs" "$arg")" || { echo "error: tlsperf $lib $mode $cs failed" >&2; exit 1; }
    fi
    printf '%s\n' "$out" | sed "s/^/$lib|$mode|$cs|$rep|/" >>"$raw"
}

libs=(openssl gnutls nbtls)
hs_cases=(tls13-ec tls12-ec tls13-rsa tls12-rsa)
bulk_cases=(tls13-ec tls12-ec)
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)

for rep in $(seq "$REPS"); do
    echo "== round $rep of $REPS" >&2
    for cs in "${hs_cases[@]}"; do
        for lib in "${libs[@]}"; do run "$lib" hs "$cs" "$HS_SECS" "$rep"; done
    done
    for cs in "${bulk_cases[@]}"; do
        for lib in "${libs[@]}"; do run "$lib" membulk "$cs" "$MEMBULK_MB" "$rep"; done
    done
    for lib in "${libs[@]}" tcp; do run "$lib" bulk tls13-ec "$BULK_MB" "$rep"; done
    for lib in "${libs[@]}"; do run "$lib" dtls tls12-ec "$DTLS_SECS" "$rep"; done
    for cs in tls13-ec tls13-rsa; do run nbtls limit "$cs" 256 "$rep"; done
    for chain in tcp tlsproxy; do run nbtls proxy "$chain" "$PROXY_MB" "$rep"; done
done
echo "== memory (deterministic: one round)" >&2
for lib in "${libs[@]}"; do run "$lib" mem tls13-ec "$MEM_N" 1; done
elapsed=$(($(date +%s) - start))
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# metric LIB MODE CASE FILTER KEY: median over rounds of KEY's value on the
# lines matching FILTER (an awk regex). KEY "cpu_MBps" falls back to
# chunk / (write_us + read_us), tlsperf's thread-CPU figures.
metric() {
    awk -F'|' -v lib="$1" -v mode="$2" -v cs="$3" -v filt="$4" -v key="$5" '
        $1 == lib && $2 == mode && $3 == cs && $5 ~ filt {
            n = split($5, f, " "); v = ""; w = ""; r = ""; ch = ""
            for (i = 1; i < n; i++) {
                if (f[i] == key) v = f[i + 1]
                if (f[i] == "write_us_per_chunk") w = f[i + 1]
                if (f[i] == "read_us_per_chunk") r = f[i + 1]
                if (f[i] == "chunk") ch = f[i + 1]
            }
            if (v == "" && key == "cpu_MBps" && w != "" && r != "" && w + r > 0) v = ch / (w + r)
            if (v != "") vals[++m] = v + 0
        }
        END {
            if (m == 0) { print "-"; exit }
            for (i = 2; i <= m; i++) { x = vals[i]; j = i - 1
                while (j > 0 && vals[j] > x) { vals[j + 1] = vals[j]; j-- }
                vals[j + 1] = x }
            med = (m % 2) ? vals[(m + 1) / 2] : (vals[m / 2] + vals[m / 2 + 1]) / 2
            if (med >= 1000 || med <= -1000) printf "%.0f\n", med
            else if (med >= 10 || med <= -10) printf "%.1f\n", med
            else printf "%.3g\n", med
        }' "$raw"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}

pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.0f%%\n", 100 * a / b }'
}

# row LABEL BETTER OPENSSL GNUTLS NBTLS [RATIOS]: RATIOS "no" prints "-".
row() {
    local r1 r2
    if [ "${6:-yes}" = no ]; then
        r1=-; r2=-
    else
        r1="$(ratio "$5" "$3")"; r2="$(ratio "$5" "$4")"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$5" "$r1" "$r2"
}

# rowf LABEL BETTER MODE CASE KEY OPENSSL_FILTER GNUTLS_FILTER NBTLS_FILTER
rowf() {
    row "$1" "$2" "$(metric openssl "$3" "$4" "$6" "$5")" "$(metric gnutls "$3" "$4" "$7" "$5")" \
        "$(metric nbtls "$3" "$4" "$8" "$5")"
}

# row3 LABEL BETTER MODE CASE FILTER KEY: one filter for all three.
row3() {
    rowf "$1" "$2" "$3" "$4" "$6" "$5" "$5" "$5"
}

echo
echo "Machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n1); load average before/after: $load_before / $load_after"
echo "Versions: OpenSSL $(pkg-config --modversion openssl 2>/dev/null || echo '?'), GnuTLS $(pkg-config --modversion gnutls 2>/dev/null || echo '?'), nbtls $(git -C "$root" rev-parse --short HEAD)"
echo "Command: REPS=$REPS HS_SECS=$HS_SECS MEMBULK_MB=$MEMBULK_MB BULK_MB=$BULK_MB MEM_N=$MEM_N DTLS_SECS=$DTLS_SECS PROXY_MB=$PROXY_MB scripts/bench.sh (${elapsed}s of runs; medians of $REPS rounds)"
echo
echo "| measure | better | OpenSSL | GnuTLS | nbtls | nbtls/OpenSSL | nbtls/GnuTLS |"
echo "|---|---|---|---|---|---|---|"
for cs in "${hs_cases[@]}"; do
    row3 "hs $cs: handshakes/s (both sides, one thread)" higher hs "$cs" "^handshakes " hs_per_s
    row3 "hs $cs: CPU µs per handshake" lower hs "$cs" "^handshakes " cpu_us_per_hs
    row3 "hs $cs: client CPU µs" lower hs "$cs" "^handshakes " client_us_per_hs
    row3 "hs $cs: server CPU µs" lower hs "$cs" "^handshakes " server_us_per_hs
done
for cs in tls13-ec tls13-rsa; do
    lim="$(metric nbtls limit "$cs" "^limit hs" cpu_us_per_hs)"
    row "hs $cs: raw-crypto limit, CPU µs (aws-lc-rs: 2 X25519, 1 sign, 2 verify), and its share of each CPU µs per handshake" - \
        "$(pct "$lim" "$(metric openssl hs "$cs" "^handshakes " cpu_us_per_hs)")" \
        "$(pct "$lim" "$(metric gnutls hs "$cs" "^handshakes " cpu_us_per_hs)")" \
        "$lim ($(pct "$lim" "$(metric nbtls hs "$cs" "^handshakes " cpu_us_per_hs)"))" no
done
limit_cpu="$(metric nbtls limit tls13-ec "^limit membulk" cpu_MBps)"
limit_wall="$(metric nbtls limit tls13-ec "^limit membulk" aes128gcm_seal_open_16k_MBps)"
for cs in "${bulk_cases[@]}"; do
    row3 "membulk $cs: MB/s (wall)" higher membulk "$cs" "^membulk_bytes " MBps
    row3 "membulk $cs: MB/s per CPU second" higher membulk "$cs" "^membulk_bytes " cpu_MBps
    row "membulk $cs: MB/s per CPU second as % of the raw-crypto limit" higher \
        "$(pct "$(metric openssl membulk "$cs" "^membulk_bytes " cpu_MBps)" "$limit_cpu")" \
        "$(pct "$(metric gnutls membulk "$cs" "^membulk_bytes " cpu_MBps)" "$limit_cpu")" \
        "$(pct "$(metric nbtls membulk "$cs" "^membulk_bytes " cpu_MBps)" "$limit_cpu")" no
done
row "membulk raw-crypto limit: 2 AES-128-GCM passes (seal + open in place) per 16 KiB, MB/s wall / per CPU s" - - - "$limit_wall / $limit_cpu" no
row3 "bulk tls13-ec, loopback TCP: MB/s (client, after the handshake)" higher bulk tls13-ec "^bytes " MBps
row3 "bulk tls13-ec: client CPU s per GB" lower bulk tls13-ec "^bytes " client_cpu_s_per_GB
row3 "bulk tls13-ec: server CPU s per GB" lower bulk tls13-ec "^server_cpu" server_cpu_s_per_GB
row3 "dtls tls12-ec: handshakes/s (both sides, one thread, UDP loopback)" higher dtls tls12-ec "^dtls_handshakes " hs_per_s
row3 "dtls tls12-ec: CPU µs per handshake" lower dtls tls12-ec "^dtls_handshakes " cpu_us_per_hs
row3 "dtls tls12-ec: client µs" lower dtls tls12-ec "^dtls_handshakes " client_us_per_hs
row3 "dtls tls12-ec: server µs" lower dtls tls12-ec "^dtls_handshakes " server_us_per_hs
for side in server client; do
    rowf "mem tls13-ec: heap B per idle session, $side" lower mem tls13-ec heap_bytes_per_session \
        "^side $side release_buffers 0 " "^side $side release_buffers 0 " "^side $side keep_peer_certificates 1 "
done
for side in server client; do
    rowf "mem tls13-ec: heap B, $side, lean (OpenSSL RELEASE_BUFFERS; nbtls keep_peer_certificates(false))" lower mem tls13-ec heap_bytes_per_session \
        "^side $side release_buffers 1 " "^side $side release_buffers 0 " "^side $side keep_peer_certificates 0 "
done
for side in server client; do
    rowf "mem tls13-ec: RSS B per idle session, $side" lower mem tls13-ec rss_bytes_per_session \
        "^side $side release_buffers 0 " "^side $side release_buffers 0 " "^side $side keep_peer_certificates 1 "
done
echo
echo "Plain TCP over loopback (tlsperf tcp bulk, no TLS): $(metric tcp bulk tls13-ec "^bytes " MBps) MB/s; client / server CPU s per GB: $(metric tcp bulk tls13-ec "^bytes " client_cpu_s_per_GB) / $(metric tcp bulk tls13-ec "^server_cpu" server_cpu_s_per_GB)."
echo
echo "Ratios are nbtls / other (\"better\" says which way is good). hs: tlsperf's total and per-side CPU are thread CPU time; nbtls-perf's total is process CPU (/proc/self/stat), split between the sides in the ratio of their monotonic time. membulk per CPU second: tlsperf's write+read thread CPU; nbtls-perf's process CPU. mem: nbtls counts Rust allocations exactly plus aws-lc's two AEAD contexts (2 x 592 B, C malloc); tlsperf uses mallinfo2. GnuTLS has no RELEASE_BUFFERS: its lean rows repeat the default. dtls: DTLS 1.2, MTU 1400, no HelloVerifyRequest cookie exchange in any of the three (tlsperf sets none up for OpenSSL or GnuTLS; nbtls-perf turns nbtls's default cookies off with ServerConfig::dtls_cookies(None)); tlsperf's per-side figures are thread CPU, nbtls-perf's the monotonic time of each side's calls (non-blocking sockets, so no waiting inside them); idle polls (no datagram waiting on either socket: a wait of up to 5 ms), median per run, OpenSSL / GnuTLS / nbtls: $(metric openssl dtls tls12-ec "^dtls_handshakes " idle_polls) / $(metric gnutls dtls tls12-ec "^dtls_handshakes " idle_polls) / $(metric nbtls dtls tls12-ec "^dtls_handshakes " idle_polls)."
echo
echo "tlsproxy beside a plain TCP relay (nbtls-perf proxy: load -> hop 1 -> hop 2 -> echo on loopback; tlsproxy hops speak TLS 1.3 to each other, one event-loop thread each; the relay copies with two threads per connection):"
echo
echo "| measure | better | plain TCP relay | tlsproxy | tlsproxy/relay |"
echo "|---|---|---|---|---|"
prow() {
    local a b
    a="$(metric nbtls proxy tcp "^proxy " "$3")"; b="$(metric nbtls proxy tlsproxy "^proxy " "$3")"
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$a" "$b" "$(ratio "$b" "$a")"
}
prow "throughput, one connection, each way: MB/s" higher MBps
prow "hops' CPU s per GB relayed" lower hops_cpu_s_per_GB
prow "connections/s (4 client threads, 64 B there and back; TLS: a full handshake each)" higher conns_per_s
prow "hops' CPU µs per connection" lower hops_cpu_us_per_conn
