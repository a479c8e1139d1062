#!/usr/bin/env bash
# `twill web` serving one small file against nginx (Debian, one worker) and
# Twisted's `twist web --path` (PyPI) serving the same file, the same wrk
# command for each; server pinned to CPU 0, wrk to CPU 1. Prints requests/s
# and the ratio to nginx, and each server's CPU time per request (user +
# system of the server and its children, from /proc: nginx serves from a
# worker process).
#
# With ROUNDS > 1 the servers take turns round after round (the order
# rotating) and each figure is the median of its rounds: this machine's
# throughput drifts by more than the differences measured.
#
# Usage: [TWILL_BIN=…] benches/web_static.sh [SECONDS] [ROUNDS]   (needs wrk
# and nginx from Debian; installs twisted into benches/.venv)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
rounds=${2:-1}
for c in wrk nginx; do
    command -v $c >/dev/null || { echo "$c is not installed (apt-get install wrk nginx-light)" >&2; exit 2; }
done
[ -x .venv/bin/twist ] || { python3 -m venv .venv && .venv/bin/pip install -q twisted; }
# TWILL_BIN=path reuses a release build (it takes long on a busy machine).
if [ -z "${TWILL_BIN:-}" ]; then
    (cd .. && cargo build --release -q --bin twill)
fi
twill=${TWILL_BIN:-../target/release/twill}

dir=$(mktemp -d)
trap 'rm -rf "$dir"; kill $(jobs -p) 2>/dev/null || true' EXIT
head -c 4096 /dev/urandom | base64 > "$dir/small.txt"   # about 5.5 KB
mkdir -p "$dir/nginx/logs"
cat > "$dir/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $dir/nginx/logs/error.log;
pid $dir/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    server { listen 127.0.0.1:18310; root $dir; }
}
CONF

tck=$(getconf CLK_TCK)
# CPU ticks of a process and its children.
tree_ticks() {
    local t=0 f
    for f in /proc/[0-9]*/stat; do
        # Fields after the command (which may hold spaces): state is 1,
        # ppid 2, utime 12, stime 13.
        read -r line < "$f" 2>/dev/null || continue
        local pid=${line%% *} rest=${line##*) }
        set -- $rest
        if [ "$pid" = "$root" ] || [ "$2" = "$root" ]; then
            t=$((t + ${12} + ${13}))
        fi
    done
    echo "$t"
}
# Prints "requests/s:CPU-µs-per-request" for the server rooted at $root.
rps() {
    local t0 t1 out
    t0=$(tree_ticks)
    out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$1/small.txt")
    t1=$(tree_ticks)
    echo "$out" | awk -v t=$((t1 - t0)) -v tck="$tck" '
        /requests in/ {n = $1}
        /Requests\/sec/ {r = $2}
        END {printf "%s:%.2f", r, t / tck * 1e6 / n}'
}
run() { # name port command…
    local name=$1 port=$2; shift 2
    taskset -c 0 "$@" >/dev/null 2>&1 &
    local pid=$!
    # Python takes a while to start on a loaded machine: wait for the port.
    for _ in $(seq 100); do
        (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    root=$pid
    result[$name]+=" $(rps "$port")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { tr ' ' '\n' | grep . | cut -d: -f"$1" | median; }

declare -A result
servers=(nginx twill-mio twill-tokio twisted)
for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < ${#servers[@]}; i++)); do
        case ${servers[$(((i + r) % ${#servers[@]}))]} in
        nginx) run nginx 18310 nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" ;;
        twill-mio) run twill-mio 18311 "$twill" web --listen tcp:18311:interface=127.0.0.1 --path "$dir" --driver mio --log-level error ;;
        twill-tokio) run twill-tokio 18312 "$twill" web --listen tcp:18312:interface=127.0.0.1 --path "$dir" --driver tokio --log-level error ;;
        twisted) run twisted 18313 .venv/bin/twist web --listen tcp:18313:interface=127.0.0.1 --path "$dir" ;;
        esac
    done
done

declare -A r c
for s in "${servers[@]}"; do
    r[$s]=$(echo "${result[$s]}" | field 1)
    c[$s]=$(echo "${result[$s]}" | field 2)
done
printf '%-12s %12s %10s %10s %10s\n' server "req/s" "vs nginx" "CPU µs" "vs nginx"
for s in "${servers[@]}"; do
    printf '%-12s %12.0f %9.2fx %10.2f %9.2fx\n' "$s" "${r[$s]}" \
        "$(echo "${r[$s]} / ${r[nginx]}" | bc -l)" "${c[$s]}" "$(echo "${c[nginx]} / ${c[$s]}" | bc -l)"
done
echo "(CPU ratio: nginx's CPU per request over the server's: above 1 is cheaper)"
if ((rounds > 1)); then
    for s in "${servers[@]}"; do echo "$s rounds (req/s:CPU µs):${result[$s]}"; done
fi
