#!/usr/bin/env bash
# The test command (README, CI): installs what is missing, builds, and runs the whole suite:
# unit tests, wire and body goldens, and the fuzz regressions.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
Tests/install-deps.sh
swift build --build-tests
swift test --skip-build
