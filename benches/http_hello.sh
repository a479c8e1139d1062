#!/usr/bin/env bash
# Hello-world requests/s: hyper 1.x (current-thread runtime) against
# twill-http on the tokio and mio drivers, the same wrk command for each,
# server pinned to CPU 0 and wrk to CPU 1; without pipelining and with
# 16-deep pipelining. Prints requests/s and the ratio to hyper.
#
# With ROUNDS > 1 the three servers take turns, round after round (the
# order rotating), and each figure is the median of its rounds: on a
# shared machine throughput drifts over a minute by more than the
# differences measured, and taking turns spreads the drift over all.
#
# Also prints the server's CPU time per request (user + system, from
# /proc/PID/stat over the wrk run): when a server is faster than one wrk
# thread can load it, requests/s stops telling them apart and this still
# does.
#
# Usage: benches/http_hello.sh [SECONDS] [ROUNDS]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
rounds=${2:-1}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo build --release --bin http_hello -q
bin=target/release/http_hello
port=18080

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)

# Prints "requests/s:CPU-µs-per-request"; $1 = server pid, $2 = extra wrk args.
rps() {
    local t0 t1 out
    t0=$(cpu_ticks "$1")
    out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" $2 "http://127.0.0.1:$port/")
    t1=$(cpu_ticks "$1")
    echo "$out" | awk -v t=$((t1 - t0)) -v tck="$tck" '
        /requests in/ {n = $1}
        /Requests\/sec/ {r = $2}
        END {printf "%s:%.3f", r, t / tck * 1e6 / n}'
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

servers=(hyper twill-tokio twill-mio)
declare -A plain piped
for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < ${#servers[@]}; i++)); do
        server=${servers[$(((i + r) % ${#servers[@]}))]}
        taskset -c 0 "$bin" "$server" "$port" &
        pid=$!
        sleep 0.5
        plain[$server]+=" $(rps "$pid" "")"
        piped[$server]+=" $(rps "$pid" "-s pipeline.lua")"
        kill "$pid"; wait "$pid" 2>/dev/null || true
        port=$((port + 1))
    done
done

declare -A p q pc qc
field() { tr ' ' '\n' | grep . | cut -d: -f"$1" | median; }
for server in "${servers[@]}"; do
    p[$server]=$(echo "${plain[$server]}" | field 1)
    q[$server]=$(echo "${piped[$server]}" | field 1)
    pc[$server]=$(echo "${plain[$server]}" | field 2)
    qc[$server]=$(echo "${piped[$server]}" | field 2)
done
printf '%-12s %10s %7s %9s %7s | %12s %7s %9s %7s\n' server "req/s" ratio "CPU µs" ratio \
    "pipe16 r/s" ratio "CPU µs" ratio
for s in "${servers[@]}"; do
    printf '%-12s %10.0f %6.2fx %9.2f %6.2fx | %12.0f %6.2fx %9.2f %6.2fx\n' "$s" \
        "${p[$s]}" "$(echo "${p[$s]} / ${p[hyper]}" | bc -l)" \
        "${pc[$s]}" "$(echo "${pc[hyper]} / ${pc[$s]}" | bc -l)" \
        "${q[$s]}" "$(echo "${q[$s]} / ${q[hyper]}" | bc -l)" \
        "${qc[$s]}" "$(echo "${qc[hyper]} / ${qc[$s]}" | bc -l)"
done
echo "(ratios: requests/s over hyper's, and hyper's CPU per request over the server's: above 1 is better)"
# Per-round ratios: each server against hyper's run of the same round
# (minutes apart at most), then their median. Drift of the machine between
# rounds cancels out of each pair.
paired() { # $1 = the server's list, $2 = hyper's, $3 = field, $4 = 1: higher is better
    paste -d' ' <(echo "$1" | tr ' ' '\n' | grep . | cut -d: -f"$3") \
        <(echo "$2" | tr ' ' '\n' | grep . | cut -d: -f"$3") |
        awk -v up="$4" '{print (up == 1) ? $1 / $2 : $2 / $1}' | median
}
if ((rounds > 1)); then
    echo "median of per-round ratios to hyper (req/s, CPU per request):"
    for s in twill-tokio twill-mio; do
        printf '%-12s plain %5.2fx %5.2fx | pipelined %5.2fx %5.2fx\n' "$s" \
            "$(paired "${plain[$s]}" "${plain[hyper]}" 1 1)" \
            "$(paired "${plain[$s]}" "${plain[hyper]}" 2 0)" \
            "$(paired "${piped[$s]}" "${piped[hyper]}" 1 1)" \
            "$(paired "${piped[$s]}" "${piped[hyper]}" 2 0)"
    done
    for server in "${servers[@]}"; do
        echo "$server rounds (req/s:CPU µs): plain${plain[$server]} | pipelined${piped[$server]}"
    done
fi
