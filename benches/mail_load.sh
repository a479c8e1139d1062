#!/usr/bin/env bash
# Messages per second over loopback SMTP, the same load for each server in
# one run: twill mail (mio and tokio drivers), aiosmtpd (its Mailbox
# handler, a Maildir), Twisted's `twist mail` (a Maildir domain).
#   benches/mail_load.sh [CONNECTIONS] [MESSAGES_PER_CONNECTION] [SIZE]
# twill fsyncs every message and the new/ directory before its 250; the
# peers do not fsync (their Maildir writes stay in the page cache). A
# second twill run with the store on /dev/shm (tmpfs: fsync is free)
# shows the protocol's cost without the disk's.
set -euo pipefail
cd "$(dirname "$0")"
C=${1:-8}
M=${2:-200}
S=${3:-2048}
PY=${TWILL_PYTHON:-../.venv/bin/python}
TWIST=$(dirname "$PY")/twist
cargo build --release --quiet --bin smtp_load
(cd .. && cargo build --release --quiet --bin twill)
TW=../target/release/twill
LOAD=target/release/smtp_load
tmp=$(mktemp -d)
shm=$(mktemp -d -p /dev/shm)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp" "$shm"; }
trap cleanup EXIT
printf 'pw\n' | $TW passwd --users "$tmp/users" load >/dev/null

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
run() { # name port
    wait_port "$2"
    printf '%-32s ' "$1"
    $LOAD "127.0.0.1:$2" "$C" "$M" "$S" load@localhost
}

port=2700
for store in "$tmp" "$shm"; do
    for driver in mio tokio; do
        port=$((port + 2))
        $TW --log-level warn mail --driver "$driver" --maildir "$store/twill-$driver" --users "$tmp/users" \
            --smtp "tcp:$port:interface=127.0.0.1" --pop3 "tcp:$((port + 1)):interface=127.0.0.1" &
        pids+=($!)
        label="twill mail ($driver)"
        [ "$store" = "$shm" ] && label="twill mail ($driver, tmpfs)"
        run "$label" "$port"
        kill "${pids[-1]}"
    done
done

port=$((port + 2))
$PY -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$tmp/aiosmtpd" 2>/dev/null &
pids+=($!)
run "aiosmtpd (Mailbox)" "$port"
kill "${pids[-1]}"

port=$((port + 2))
$TWIST mail -E -H localhost -d "localhost=$tmp/twisted" -u load=pw -s "tcp:$port:interface=127.0.0.1" --no-pop3 >/dev/null 2>&1 &
pids+=($!)
run "Twisted twist mail" "$port"
