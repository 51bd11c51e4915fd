#!/usr/bin/env bash
# Installs the programs the test suite starts, as root on Debian. Elsewhere it only reports.
set -euo pipefail
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# Dovecot (tests/support/dovecot.py): IMAP, POP3, LMTP to deliver test mail, submission for the
# SMTP tests. Each protocol is its own Debian package, so ask dpkg; elsewhere look for the server
# (in /usr/sbin, which is not on every PATH).
if command -v dpkg >/dev/null 2>&1; then
  for package in dovecot-imapd dovecot-pop3d dovecot-submissiond dovecot-lmtpd; do
    dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
  done
elif ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
  need+=(dovecot)
fi
# Postfix (tests/support/postfix.py): SMTP submission checking tokens through Dovecot's SASL.
if command -v dpkg >/dev/null 2>&1; then
  dpkg -s postfix >/dev/null 2>&1 || need+=(postfix)
elif ! command -v postfix >/dev/null 2>&1 && [ ! -x /usr/sbin/postfix ]; then
  need+=(postfix)
fi
# Chromium (tests/browser): the admin pages tested in a real browser through Playwright, which
# never downloads one of its own.
if command -v dpkg >/dev/null 2>&1; then
  dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
elif [ ! -x /usr/bin/chromium ]; then
  need+=(chromium)
fi
# PostgreSQL (tests/support/postgres.py): the desk's tests on the second database mailgate runs on.
if command -v dpkg >/dev/null 2>&1; then
  dpkg -s postgresql >/dev/null 2>&1 || need+=(postgresql)
elif ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  # Postfix asks what kind of mail server this is: none; the tests run their own instances.
  if command -v debconf-set-selections >/dev/null 2>&1; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  fi
  # Quiet unless something fails (debconf's notes on stderr included).
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  # Keep existing configuration files without asking (Dovecot's conffiles, on an upgrade).
  if ! { apt-get update -qq &&
    apt-get install -y -qq -o Dpkg::Options::=--force-confdef \
      -o Dpkg::Options::=--force-confold "${need[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
else
  echo "tests: missing ${need[*]}; tests that need them fail in CI and skip here (not root)." >&2
fi
