#!/usr/bin/env bash
# Installs the programs the test suite starts, as root on Debian. Elsewhere it only reports.
set -euo pipefail
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
for package in dovecot-imapd dovecot-pop3d dovecot-submissiond dovecot-lmtpd; do
  dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${need[@]}" >/dev/null
else
  echo "tests: missing ${need[*]}; tests that need them fail in CI and skip here (not root)." >&2
fi
