#!/usr/bin/env bash
# Installs the Debian packages gwx's tests and demo use, only when a tool is missing.
# Usage: install-system-deps.sh PACKAGE... -- TOOL...
set -euo pipefail
packages=(); tools=(); seen_sep=0
for a in "$@"; do
  if [ "$a" = "--" ]; then seen_sep=1; continue; fi
  if [ $seen_sep = 0 ]; then packages+=("$a"); else tools+=("$a"); fi
done
missing=0
for t in "${tools[@]}"; do command -v "$t" >/dev/null 2>&1 || missing=1; done
# the softhsm2 PKCS#11 module is a library, not a tool
[ -e /usr/lib/softhsm/libsofthsm2.so ] || missing=1
# a CJK font for drawing seal pictures (pki.seal_picture); a font is a file, not a tool
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || missing=1
# PostgreSQL's server (the store tests start one: tests/postgres_server.py) is not on PATH in Debian
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing=1
[ $missing = 0 ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "installing system packages: ${packages[*]}" >&2
$SUDO apt-get update -qq
# postfix (bench/node.py --vs-postfix runs an instance of its own): no system mail server configured
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
