#!/usr/bin/env bash
# Messages per second over loopback SMTP, the same load for each server in
# one run: twill mail (mio and tokio drivers), aiosmtpd (its Mailbox
# handler, a Maildir), Twisted's ESMTP server (twisted_mail.py: the
# `twisted.mail.smtp` protocol storing into a Maildir as aiosmtpd does;
# the `twist mail` plugin itself cannot deliver on Python 3, see there).
#   benches/mail_load.sh [CONNECTIONS] [MESSAGES_PER_CONNECTION] [SIZE]
# twill fsyncs every message and the new/ directory before its 250; the
# peers do not fsync (their Maildir writes stay in the page cache). A
# second twill run with the store on /dev/shm (tmpfs: fsync is free)
# shows the protocol's cost without the disk's.
# The peers are installed from PyPI into benches/.venv (as ftp_retr.sh
# does); a peer that cannot be installed or started stops the script.
set -euo pipefail
cd "$(dirname "$0")"
C=${1:-8}
M=${2:-200}
S=${3:-2048}
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import aiosmtpd, twisted.mail' 2>/dev/null || .venv/bin/pip install -q aiosmtpd twisted
.venv/bin/python -c 'import aiosmtpd, twisted.mail' || { echo "aiosmtpd/Twisted missing" >&2; exit 1; }
PY=.venv/bin/python
cargo build --release --quiet --bin smtp_load
# TWILL_BIN=path uses a twill binary already built (the release build of
# the whole CLI takes most of an hour on the loaded 2-core machine).
if [ -n "${TWILL_BIN:-}" ]; then
    TW=$TWILL_BIN
else
    (cd .. && cargo build --release --quiet --bin twill)
    TW=../target/release/twill
fi
LOAD=target/release/smtp_load
tmp=$(mktemp -d)
shm=$(mktemp -d -p /dev/shm)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp" "$shm"
}
trap cleanup EXIT
printf 'pw\n' | $TW passwd --users "$tmp/users" load >/dev/null

wait_port() { # port pid
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return
        kill -0 "$2" 2>/dev/null || { echo "server on port $1 exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    exit 1
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
run() { # name port dir
    wait_port "$2" "${pids[-1]}"
    printf '%-28s ' "$1"
    out=$($LOAD "127.0.0.1:$2" "$C" "$M" "$S" load@localhost)
    # Every 250 must be a message on disk in some new/ directory.
    got=$(find "$3" -path '*/new/*' -type f | wc -l)
    printf '%s (%s files in new/)\n' "$out" "$got"
    [ "$got" -eq $((C * M)) ] || { echo "$1: $got messages stored, $((C * M)) sent" >&2; exit 1; }
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  ($C connections x $M messages of $S octets)"
port=2700
for store in "$tmp" "$shm"; do
    for driver in mio tokio; do
        port=$((port + 2))
        $TW --log-level warn mail --driver "$driver" --maildir "$store/twill-$driver" --users "$tmp/users" \
            --smtp "tcp:$port:interface=127.0.0.1" --pop3 "tcp:$((port + 1)):interface=127.0.0.1" &
        pids+=($!)
        label="twill mail ($driver)"
        [ "$store" = "$shm" ] && label="twill mail ($driver, tmpfs)"
        run "$label" "$port" "$store/twill-$driver"
        stop "${pids[-1]}"
    done
done

port=$((port + 2))
$PY -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$tmp/aiosmtpd" &
pids+=($!)
run "aiosmtpd (Mailbox)" "$port" "$tmp/aiosmtpd"
stop "${pids[-1]}"

port=$((port + 2))
$PY twisted_mail.py "$port" "$tmp/twisted" >"$tmp/twisted.log" 2>&1 &
pids+=($!)
run "Twisted ESMTP" "$port" "$tmp/twisted"
stop "${pids[-1]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
