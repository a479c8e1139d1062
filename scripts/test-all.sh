#!/usr/bin/env bash
# Installs what the tests need and runs every test: formatting, lints (which
# also keep clocks, threads and sockets out of protocols/), unit and
# integration tests, real-peer tests (Python clients), and the fuzz corpus
# replayed as regression tests. Fails loudly when a peer is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Debian packages the real-peer tests use: Python, curl (twill web, TLS)
# and openssl (s_client against ssl: endpoints).
DEBS=(python3 python3-venv curl openssl ngircd)
# A Python with venv that is not Debian's is good enough; so is a curl
# installed some other way.
have_python=false
if command -v python3 >/dev/null && python3 -c 'import venv' 2>/dev/null; then
    have_python=true
fi
missing=()
for p in "${DEBS[@]}"; do
    case "$p" in python3*) if $have_python; then continue; fi ;; esac
    dpkg -s "$p" >/dev/null 2>&1 || command -v "$p" >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        step "apt-get install ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "missing Debian packages: ${missing[*]} (run as root to install)" >&2
        exit 1
    fi
fi

step "Python venv for the real-peer tests"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/py/requirements.txt
export TWILL_PYTHON="$PWD/.venv/bin/python"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
mkdir -p target
set +e
{
    # A hung test fails the run instead of eating CI's 90 minutes.
    timeout 45m cargo test --workspace --all-targets --no-fail-fast 2>&1
    echo "all-targets exit: $?"
    timeout 15m cargo test --workspace --doc 2>&1
    echo "doc exit: $?"
} | tee target/test-output.txt
status=0
grep -q '^all-targets exit: 0$' target/test-output.txt || status=1
grep -q '^doc exit: 0$' target/test-output.txt || status=1
set -e

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo
echo "${passed} passed, ${failed} failed"
exit "$status"
