#!/usr/bin/env bash
# Fuzz one target with libFuzzer: fuzz/run.sh TARGET [SECONDS]
# Targets: lines netstring prefixed framed_machine chat_machine http_request
# http_response http_chunked http_server_machine tls_server
# mail_commands smtp_unstuff smtp_server_machine pop3_server_machine
# websocket_frames websocket_machine websocket_inflate irc_message
# irc_server_machine ftp_command ftp_reply ftp_server_machine
# Needs cargo-fuzz (`cargo install cargo-fuzz`); libFuzzer's instrumentation
# is nightly-only, so this runs the stable toolchain with RUSTC_BOOTSTRAP=1.
# New interesting inputs land in fuzz/corpus/TARGET/ (commit the small ones
# that found bugs: tests/fuzz_corpus.rs replays them on stable), crashes in
# fuzz/artifacts/TARGET/.
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-60}
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi
RUSTC_BOOTSTRAP=1 exec cargo fuzz run "$target" -- -max_total_time="$seconds"
