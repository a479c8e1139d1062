#!/usr/bin/env bash
# Hello-world requests/s: hyper 1.x (current-thread runtime) against
# twill-http on the tokio and mio drivers, the same wrk command for each,
# server pinned to CPU 0 and wrk to CPU 1; without pipelining and with
# 16-deep pipelining. Prints requests/s and the ratio to hyper.
#
# Usage: benches/http_hello.sh [SECONDS]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo build --release --bin http_hello -q
bin=target/release/http_hello
port=18080

rps() { # $1 = extra wrk args
    taskset -c 1 wrk -t1 -c64 -d"${secs}s" $1 "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}'
}

declare -A plain piped
for server in hyper twill-tokio twill-mio; do
    taskset -c 0 "$bin" "$server" "$port" &
    pid=$!
    sleep 0.5
    plain[$server]=$(rps "")
    piped[$server]=$(rps "-s pipeline.lua")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    port=$((port + 1))
done

printf '%-14s %14s %8s %18s %8s\n' server "req/s" ratio "req/s (pipe 16)" ratio
for server in hyper twill-tokio twill-mio; do
    printf '%-14s %14.0f %7.2fx %18.0f %7.2fx\n' "$server" \
        "${plain[$server]}" "$(echo "${plain[$server]} / ${plain[hyper]}" | bc -l)" \
        "${piped[$server]}" "$(echo "${piped[$server]} / ${piped[hyper]}" | bc -l)"
done
