#!/usr/bin/env bash
# Installs the real services the farm-mode tests run against, from Debian packages:
# PostgreSQL, Ceph (mon, osd, RADOS Gateway), HAProxy and an MIT Kerberos KDC; and the programs
# other tests drive: Chromium (the dashboard, headless), systemd (systemd-analyze verify of the
# units) and iproute2 (network namespaces for the agent's network tests and benchmark). libkrb5-dev is there so that npm builds the optional kerberos package (Negotiate) against it:
# run this before npm install.
#
# Usage: bash scripts/services/install.sh
#
# Idempotent: returns at once when every program is already there. Never fails the caller:
# when it is not root or apt-get fails, it prints a loud WARNING and exits 0, and the tests
# that need the services skip loudly.
set -uo pipefail

PACKAGES=(postgresql ceph-mon ceph-osd radosgw haproxy chromium systemd krb5-kdc krb5-admin-server krb5-user libkrb5-dev iproute2)

have_all() {
  local pg=""
  for v in 17 16 15 14 13; do [[ -x "/usr/lib/postgresql/$v/bin/initdb" ]] && pg=1; done
  [[ -n "$pg" ]] || return 1
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool haproxy curl systemd-analyze ip tc; do
    command -v "$b" >/dev/null 2>&1 || return 1
  done
  [[ -x /usr/bin/chromium ]] || return 1
  for b in /usr/sbin/krb5kdc /usr/sbin/kdb5_util /usr/sbin/kadmin.local /usr/bin/kinit /usr/bin/krb5-config; do
    [[ -x "$b" ]] || return 1
  done
}

warn() {
  echo "" >&2
  echo "WARNING: ==================================================================" >&2
  echo "WARNING: $*" >&2
  echo "WARNING: tests that need PostgreSQL, Ceph RGW, HAProxy, Kerberos, Chromium or systemd will SKIP." >&2
  echo "WARNING: ==================================================================" >&2
  echo "" >&2
}

if have_all; then
  echo "services: postgresql, ceph (mon, osd, radosgw), haproxy, kerberos, chromium and systemd already installed"
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  warn "not root: cannot apt-get install ${PACKAGES[*]}"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  warn "no apt-get on this machine: install ${PACKAGES[*]} by other means"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
start=$SECONDS
echo "services: installing ${PACKAGES[*]} curl"
if ! apt-get update -q >/tmp/bits-services-apt.log 2>&1; then
  tail -20 /tmp/bits-services-apt.log >&2
  warn "apt-get update failed (log /tmp/bits-services-apt.log)"
  exit 0
fi
# policy-rc.d keeps the packages' own daemons from being started by the install
policy=/usr/sbin/policy-rc.d
made_policy=""
if [[ ! -e "$policy" ]]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1; fi
apt-get install -y -q "${PACKAGES[@]}" curl >>/tmp/bits-services-apt.log 2>&1
rc=$?
[[ -n "$made_policy" ]] && rm -f "$policy"
if (( rc != 0 )); then
  tail -20 /tmp/bits-services-apt.log >&2
  warn "apt-get install failed (log /tmp/bits-services-apt.log)"
  exit 0
fi
if ! have_all; then
  warn "installed, but some programs are still missing"
  exit 0
fi
echo "services: installed in $((SECONDS - start))s"
