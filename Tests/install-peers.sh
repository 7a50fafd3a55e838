#!/usr/bin/env bash
# Installs the real third-party peers the interop tests run against, if missing (Debian/Ubuntu):
# prosody (XMPP server), python3-slixmpp (scripted XMPP client), openssl (test certificates),
# sip-tester (SIPp, a scripted SIP user agent), python3-venv, kamailio (a SIP proxy for peer mode),
# baresip-core (Debian's baresip 1.0, a SIP client with its own digest quirks), ejabberd (an XMPP
# server with s2s_use_starttls: required), dnsmasq-base (a private DNS server for SRV records),
# lua-unbound (Prosody's resolver, pointed at that DNS server);
# and pjsua2 (pjsip's Python binding,
# a real SIP user agent) from PyPI into the venv .build/interop-venv.
# Their system services must not start (they would listen on 0.0.0.0): while apt runs, a
# policy-rc.d that refuses service starts is in place unless one already exists.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(prosody python3-slixmpp openssl sip-tester python3-venv kamailio kamailio-presence-modules baresip-core ejabberd dnsmasq-base lua-unbound)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
install_venv() {
  # Debian's python3 (not a pyenv shim): the wheel's ABI and python3-venv match it.
  local venv=.build/interop-venv
  if ! "$venv/bin/python" -c 'import pjsua2' 2>/dev/null; then
    echo "installing pjsua2-python into $venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'pjsua2-python==2.15.1.post1'
  fi
}
if [ ${#missing[@]} -eq 0 ]; then
  install_venv
  exit 0
fi
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# A system Prosody, Kamailio or ejabberd started anyway (a machine without the policy mechanism) must not
# hold ports.
for service in prosody kamailio ejabberd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    $sudo systemctl disable --now "$service" || true
  fi
done
install_venv
