#!/usr/bin/env bash
# Idempotent: install Debian's Prometheus (with promtool) and Alertmanager when they are missing.
# Used by the e2e test tier's set-up and by CI; needs root (or passwordless sudo) and apt-get.
# The packages' own services are not started here (Stratus starts its own instances on free ports).
set -euo pipefail

need=()
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ] || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || [ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)

if [ ${#need[@]} -eq 0 ]; then
  echo "install-promstack: ok (already installed)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-promstack: apt-get not found; install ${need[*]} by hand" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "install-promstack: need root to apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

# Keep the packages' systemd units (if any) from starting a Prometheus on :9090 during the install.
export DEBIAN_FRONTEND=noninteractive
policy_rc=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy_rc" ] && [ "$(id -u)" = 0 ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
  chmod +x "$policy_rc"
  created_policy=1
fi
cleanup() { [ "$created_policy" = 1 ] && rm -f "$policy_rc"; return 0; }
trap cleanup EXIT

echo "install-promstack: apt-get install ${need[*]}"
"${SUDO[@]}" apt-get update -qq >/dev/null
# shellcheck disable=SC2048,SC2086
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
echo "install-promstack: ok ($(/usr/bin/prometheus --version 2>&1 | head -1); $(/usr/bin/prometheus-alertmanager --version 2>&1 | head -1))"
