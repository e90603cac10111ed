#!/usr/bin/env bash
# System packages the suite talks to for real: Dovecot (IMAP tests), poppler-utils (pdftotext
# reads the PDF notices back) and Chromium (the web desk's browser tests drive it through
# Playwright's bundled driver). The desk itself needs none: the notice's Japanese font ships
# in the package (mailbot/fonts/).
# Installs only what is missing, and only as root (CI is root; a developer may install by hand).
set -euo pipefail
need=()
[ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} (install them as root; the tests that need them skip)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
