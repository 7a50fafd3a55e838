#!/usr/bin/env bash
# Installs the system packages Stox builds against, if any is missing (Debian/Ubuntu):
# libexpat1-dev (streaming XML), libssl-dev (TLS), libsqlite3-dev (state), pkg-config.
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail
packages=(libexpat1-dev libssl-dev libsqlite3-dev pkg-config)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v swift >/dev/null 2>&1; then
  echo "swift is not on PATH: install Swift 6.1 or later (https://swift.org/install)" >&2
  exit 1
fi
