#!/usr/bin/env bash
# Installs the real third-party peers the interop tests run against, if missing (Debian/Ubuntu):
# prosody (XMPP server), python3-slixmpp (scripted XMPP client), openssl (test certificates),
# sip-tester (SIPp, a scripted SIP user agent).
# Their system services must not start (they would listen on 0.0.0.0): while apt runs, a
# policy-rc.d that refuses service starts is in place unless one already exists.
set -euo pipefail
packages=(prosody python3-slixmpp openssl sip-tester)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# A system Prosody started anyway (a machine without the policy mechanism) must not hold ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prosody 2>/dev/null; then
  $sudo systemctl disable --now prosody || true
fi
