#!/usr/bin/env bash
# `twill web` serving one small file against nginx (Debian, one worker) and
# Twisted's `twist web --path` (PyPI) serving the same file, the same wrk
# command for each; server pinned to CPU 0, wrk to CPU 1. Prints requests/s
# and the ratio to nginx.
#
# Usage: [TWILL_BIN=…] benches/web_static.sh [SECONDS]   (needs wrk and nginx
# from Debian; installs twisted into benches/.venv)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
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

rps() { taskset -c 1 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$1/small.txt" | awk '/Requests\/sec/ {print $2}'; }
run() { # name port command…
    local name=$1 port=$2; shift 2
    taskset -c 0 "$@" >/dev/null 2>&1 &
    local pid=$!
    # Python takes a while to start on a loaded machine: wait for the port.
    for _ in $(seq 100); do
        (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    result[$name]=$(rps "$port")
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

declare -A result
run nginx 18310 nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf"
run twill-mio 18311 "$twill" web --listen tcp:18311:interface=127.0.0.1 --path "$dir" --driver mio --log-level error
run twill-tokio 18312 "$twill" web --listen tcp:18312:interface=127.0.0.1 --path "$dir" --driver tokio --log-level error
run twisted 18313 .venv/bin/twist web --listen tcp:18313:interface=127.0.0.1 --path "$dir"

printf '%-12s %12s %10s\n' server "req/s" "vs nginx"
for s in nginx twill-mio twill-tokio twisted; do
    printf '%-12s %12.0f %9.2fx\n' "$s" "${result[$s]}" "$(echo "${result[$s]} / ${result[nginx]}" | bc -l)"
done
