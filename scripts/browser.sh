#!/usr/bin/env bash
# Install the browser the e2e browser checks drive: Debian's `chromium` at /usr/bin/chromium.
#
# Playwright for Python (locked in requirements/lock.txt) drives this system binary through
# `executable_path`; Playwright never downloads a browser of its own
# (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 is exported for any `playwright install` a tool may try).
# Idempotent: does nothing when /usr/bin/chromium exists. Installing needs root (apt-get).
# Called by scripts/test.sh before the e2e tier; no test installs anything itself.
set -euo pipefail
CHROMIUM=${MBT_CHROMIUM:-/usr/bin/chromium}
say() { echo "[browser] $*"; }
die() { echo "[browser] ERROR: $*" >&2; exit 1; }
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if [ -x "$CHROMIUM" ]; then
  say "chromium present: $CHROMIUM"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "$CHROMIUM is missing and apt-get is not available: install Chromium by hand"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "$CHROMIUM is missing: run this script as root (apt-get install chromium)"
  SUDO=sudo
fi
say "installing Debian's chromium package (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
[ -x "$CHROMIUM" ] || die "apt-get installed chromium but $CHROMIUM is missing"
say "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
