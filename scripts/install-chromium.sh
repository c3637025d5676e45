#!/usr/bin/env bash
# Idempotent: install Debian's Chromium (/usr/bin/chromium) when it is missing, for the console's browser test and
# its screenshots. Playwright drives this browser; its own browser download (`playwright install`) is never used.
# Needs root (or passwordless sudo) and apt-get.
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
  echo "install-chromium: ok (already installed: $("$CHROMIUM" --version 2>/dev/null | head -1))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: $CHROMIUM is missing and apt-get was not found; install Chromium by hand" \
    "(Debian/Ubuntu package chromium) or set STRATUS_TEST_CHROMIUM to a Chromium binary" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "install-chromium: need root (or passwordless sudo) to apt-get install chromium;" \
      "run 'sudo apt-get install chromium' or set STRATUS_TEST_CHROMIUM to a Chromium binary" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-chromium: apt-get install chromium"
# (another apt-get may hold the dpkg lock for a while: wait for it rather than fail)
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium >/dev/null
[ -x "$CHROMIUM" ] || { echo "install-chromium: apt-get finished but $CHROMIUM is still missing" >&2; exit 1; }
echo "install-chromium: ok ($("$CHROMIUM" --version 2>/dev/null | head -1))"
