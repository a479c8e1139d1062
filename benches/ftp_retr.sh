#!/usr/bin/env bash
# A 1 GiB RETR over loopback from `twill ftp` (mio and tokio drivers),
# pyftpdlib (PyPI) and vsftpd (Debian) serving the same file, and a plain
# sendfile() socket copy (the limit); the same Python receiver for all
# (benches/ftp_retr.py, recv_into a reused 1 MiB buffer). Server on CPU 0,
# client on CPU 1; best of 3 per server. Prints MB/s and the ratio to the
# plain copy.
#
# Usage: benches/ftp_retr.sh   (needs vsftpd from Debian; installs
# pyftpdlib into benches/.venv)
set -euo pipefail
cd "$(dirname "$0")"
command -v vsftpd >/dev/null || [ -x /usr/sbin/vsftpd ] || { echo "vsftpd is not installed (apt-get install vsftpd)" >&2; exit 2; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import pyftpdlib' 2>/dev/null || .venv/bin/pip install -q pyftpdlib
py=.venv/bin/python
(cd .. && cargo build --release -q --bin twill)
twill=../target/release/twill

dir=$(mktemp -d)
trap 'rm -rf "$dir"; kill $(jobs -p) 2>/dev/null || true' EXIT
mkdir -p "$dir/pub" "$dir/empty"
head -c $((1 << 30)) /dev/urandom > "$dir/pub/big.bin"
# Written back before anything is timed: otherwise the first contender
# (the plain copy) runs while the kernel flushes a dirty GiB.
sync "$dir/pub/big.bin"
chmod 755 "$dir" "$dir/pub"; chmod 644 "$dir/pub/big.bin"
cat > "$dir/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=18403
anonymous_enable=YES
local_enable=NO
write_enable=NO
anon_root=$dir/pub
no_anon_password=YES
secure_chroot_dir=$dir/empty
run_as_launching_user=YES
pasv_enable=YES
seccomp_sandbox=NO
xferlog_enable=NO
background=NO
CONF

best() { # port
    local b=0
    for _ in 1 2 3; do
        local r
        r=$(taskset -c 1 "$py" ftp_retr.py ftp "$1" big.bin | awk '{print $1}')
        [ "$r" -gt "$b" ] && b=$r
    done
    echo "$b"
}
run() { # name port command…
    local name=$1 port=$2; shift 2
    taskset -c 0 "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep 1
    result[$name]=$(best "$port")
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

declare -A result
b=0
for _ in 1 2 3; do
    r=$(taskset -c 1 "$py" ftp_retr.py plain "$dir/pub/big.bin" | awk '{print $1}')
    [ "$r" -gt "$b" ] && b=$r
done
result[plain]=$b
run twill-mio 18401 "$twill" ftp --anonymous --root "$dir/pub" --listen tcp:18401:interface=127.0.0.1 --driver mio --log-level error
run twill-tokio 18402 "$twill" ftp --anonymous --root "$dir/pub" --listen tcp:18402:interface=127.0.0.1 --driver tokio --log-level error
run vsftpd 18403 /usr/sbin/vsftpd "$dir/vsftpd.conf"
run pyftpdlib 18404 "$py" -m pyftpdlib -i 127.0.0.1 -p 18404 -d "$dir/pub"

printf '%-12s %10s %10s\n' server "MB/s" "vs plain"
for s in plain twill-mio twill-tokio vsftpd pyftpdlib; do
    printf '%-12s %10s %9.2fx\n' "$s" "${result[$s]}" "$(echo "${result[$s]} / ${result[plain]}" | bc -l)"
done
