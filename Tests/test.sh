#!/usr/bin/env bash
# The test command (README, CI): installs what is missing, builds, and runs the whole suite:
# unit tests, wire and body goldens, translation goldens, fuzz regressions, and the interop
# tests against a real Prosody on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
Tests/install-deps.sh
Tests/install-peers.sh
swift build --build-tests
swift test --skip-build
