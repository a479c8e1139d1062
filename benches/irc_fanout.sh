#!/usr/bin/env bash
# IRC fan-out over loopback, the same load for each server in one run:
# `twill irc` on the mio and tokio drivers and ngircd (Debian package; its
# config is written here and it listens on 127.0.0.1). CLIENTS clients
# join one channel, SENDERS of them send MESSAGES lines each, every client
# counts what arrives (benches/src/bin/irc_fanout.rs).
#   benches/irc_fanout.sh [CLIENTS] [SENDERS] [MESSAGES] [WINDOW] [ROUNDS]
#
# Flood throttling is off on every server, so it is the relaying that is
# measured, not the servers' different penalty rules: `twill irc
# --flood-interval-ms 0` and ngircd `MaxPenaltyTime = 0` (ngircd throttles
# only through penalties, which that setting disables). ngircd also gets
# MaxConnectionsIP = 0 (all clients come from 127.0.0.1), MaxJoins = 0 and
# long ping timeouts. At most WINDOW messages are in flight, so neither
# server's send-queue limit (twill 512 KiB, ngircd's write buffer) is hit.
set -euo pipefail
cd "$(dirname "$0")"
N=${1:-1000}
S=${2:-10}
M=${3:-100}
W=${4:-50}
ROUNDS=${5:-3}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NGIRCD=$(command -v ngircd || echo /usr/sbin/ngircd)
[ -x "$NGIRCD" ] || { echo "ngircd is not installed (apt-get install ngircd)" >&2; exit 1; }
cargo build --release --quiet --bin irc_fanout
(cd .. && cargo build --release --quiet --bin twill)
TW=../target/release/twill
LOAD=target/release/irc_fanout
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
run() { # name port
    wait_port "$2"
    printf '%-22s ' "$1"
    $LOAD "127.0.0.1:$2" "$N" "$S" "$M" "$W"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
port=6900
for round in $(seq "$ROUNDS"); do
    for driver in mio tokio; do
        port=$((port + 1))
        $TW --log-level warn irc --driver "$driver" --listen "tcp:$port:interface=127.0.0.1:backlog=1024" \
            --flood-interval-ms 0 &
        pids+=($!)
        run "twill irc ($driver)" "$port"
        kill "${pids[-1]}"
        wait "${pids[-1]}" 2>/dev/null || true
    done

    port=$((port + 1))
    cat >"$tmp/ngircd.conf" <<EOF
[Global]
  Name = bench.irc
  Info = twill fan-out bench
  Listen = 127.0.0.1
  Ports = $port
[Limits]
  MaxConnections = 0
  MaxConnectionsIP = 0
  MaxJoins = 0
  MaxPenaltyTime = 0
  PingTimeout = 600
  PongTimeout = 600
[Options]
  DNS = no
  Ident = no
  PAM = no
EOF
    "$NGIRCD" -n -f "$tmp/ngircd.conf" >/dev/null 2>&1 &
    pids+=($!)
    run "ngircd" "$port"
    kill "${pids[-1]}"
    wait "${pids[-1]}" 2>/dev/null || true
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
