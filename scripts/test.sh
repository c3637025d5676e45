#!/usr/bin/env bash
# The whole test suite as two pytest sessions side by side (`make test` runs this after lint and type checks).
#
# Most of the suite's wall time is waiting: end-to-end tests watch incidents open, mitigate and close on the arena
# while the CPU idles (load about 1 on 2 cores). So the slowest end-to-end files run in one session and everything
# else in another, each with its own NATS, Redis and arena on free ports and its own temporary directory. Session A
# names its files; session B is `tests` minus exactly those, so together they run every test, once.
# Whatever needs a system package installs it from one session only: Prometheus and Alertmanager (B), Chromium (A).
#
#   scripts/test.sh                  both sessions; exit 0 only if both pass
#   STRATUS_TEST_SERIAL=1 scripts/test.sh   one session, everything (for a machine with one core)
#   scripts/test.sh -x -k alock      extra arguments go to both sessions
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}

SESSION_A=(
  tests/e2e/test_chaos_safety.py
  tests/e2e/test_sregym_bench.py
  tests/e2e/test_bench_noise.py
  tests/e2e/test_change_revert.py
  tests/e2e/test_scaling.py
  tests/e2e/test_crashes.py
  tests/e2e/test_console_browser.py
  tests/e2e/test_memory_recurrence.py
  tests/e2e/test_bench.py
  tests/e2e/test_kill_points.py
  tests/e2e/test_llm_system.py
)
COMMON=(-q -p no:cacheprovider --durations=20 "$@")

if [[ "${STRATUS_TEST_SERIAL:-0}" == 1 ]]; then
  exec "$BIN/pytest" "${COMMON[@]}" tests
fi

for f in "${SESSION_A[@]}"; do
  [[ -f "$f" ]] || { echo "scripts/test.sh: $f is listed for session A but does not exist" >&2; exit 2; }
done
ignore=()
for f in "${SESSION_A[@]}"; do ignore+=(--ignore "$f"); done

logs=$(mktemp -d /tmp/stratus-test.XXXXXX)
base_a="$logs/tmp-a"
base_b="$logs/tmp-b"
start=$(date +%s)
"$BIN/pytest" "${COMMON[@]}" --basetemp "$base_a" "${SESSION_A[@]}" >"$logs/a.log" 2>&1 &
pid_a=$!
"$BIN/pytest" "${COMMON[@]}" --basetemp "$base_b" tests "${ignore[@]}" >"$logs/b.log" 2>&1 &
pid_b=$!
trap 'kill $pid_a $pid_b 2>/dev/null; wait; exit 130' INT TERM
echo "test: two pytest sessions (logs in $logs): A = ${#SESSION_A[@]} end-to-end files, B = the rest"

# A line every minute so a long quiet run is visibly alive: the tests each session has finished so far (pytest -q's
# progress characters, read up to its first section header), failures counted apart.
done_in() {
  local n
  n=$(awk '/^[=_]/ {exit} {print}' "$1" | tr -d ' \n' | sed 's/\[[0-9]*%\]//g' | awk '{
    n = gsub(/[.FEsxX]/, "&"); f = gsub(/[FE]/, "&"); printf "%d%s", n, (f ? " (" f " failed)" : "") }')
  echo "${n:-0}"
}
while kill -0 $pid_a 2>/dev/null || kill -0 $pid_b 2>/dev/null; do
  sleep 60 &
  wait $! 2>/dev/null
  echo "test: $(( $(date +%s) - start ))s  tests done: A $(done_in "$logs/a.log"), B $(done_in "$logs/b.log")"
done
wait $pid_a; rc_a=$?
wait $pid_b; rc_b=$?
trap - INT TERM

echo "================================ session A ================================"
cat "$logs/a.log"
echo "================================ session B ================================"
cat "$logs/b.log"
echo "test: session A exit $rc_a, session B exit $rc_b, wall $(( $(date +%s) - start ))s"
if [[ $rc_a -ne 0 || $rc_b -ne 0 ]]; then
  exit 1
fi
rm -rf "$logs"
