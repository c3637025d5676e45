#!/usr/bin/env bash
# Record the memory suite's real agent traces, then rebuild arena/bench/memory/data/local-traces-v1.jsonl from them:
# the local model (make llm-local) on a sample of catalogue scenarios, and the scripted failure-injecting model
# (arena/bench/memory/injector.py, no LLM needed) on six catalogue scenarios with two seeds.
#
#   scripts/memory-traces.sh            both, then the file (runs already in $OUT are kept)
#   scripts/memory-traces.sh injected   only the failure-injecting model's runs, then the file
#   scripts/memory-traces.sh build      only rebuild the file from the runs already in $OUT
#
# Each incident is capped (6 model calls per piece of work, 2 attempts, a time limit per scenario) and the rulebook
# fallback is off, so every recorded step is the model's own; the step check is off, so its notes do not steer the
# model. Everything runs under nice: the model costs ~15-60 s per call on a shared 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench-out/memory-traces}
TIMEOUT=${TIMEOUT:-900}
NICE=${NICE:-19}
# suite:problem-id pairs: AIOpsLab mitigation problems of the catalogue's top level, then SREGym problems
SAMPLE=${SAMPLE:-"aiopslab-mitigation:k8s_target_port-misconfig-mitigation-1 \
sregym:missing_configmap_hotel_reservation \
aiopslab-mitigation:scale_pod_zero_social_net-mitigation-1 \
sregym:wrong_service_selector_astronomy_shop \
aiopslab-mitigation:revoke_auth_mongodb-mitigation-1 \
sregym:liveness_probe_misconfiguration_social_network \
aiopslab-mitigation:redeploy_without_PV-mitigation-1 \
sregym:incorrect_image"}

build() {
  .venv/bin/python -m arena.bench.memory.traces "$OUT"/*/ --commit "$(git rev-parse --short HEAD)"
}

injected() {
  for seed in 0 1; do
    if [ ! -f "$OUT/injected-seed$seed/bench.json" ]; then
      nice -n "$NICE" .venv/bin/python -m arena.bench.memory.injector "$OUT/injected-seed$seed" --seed "$seed"
    fi
  done
}

case "${1:-}" in
  build) build; exit 0 ;;
  injected) mkdir -p "$OUT"; injected; build; exit 0 ;;
esac

bash scripts/llm-local.sh start
eval "$(bash scripts/llm-local.sh env)"
export STRATUS_LLM_MAX_STEPS=${STRATUS_LLM_MAX_STEPS:-6} STRATUS_MAX_RETRIES=${STRATUS_MAX_RETRIES:-1}
export STRATUS_LLM_REPLY_TOKENS=${STRATUS_LLM_REPLY_TOKENS:-256} STRATUS_LLM_FALLBACK=false
export STRATUS_LLM_TIMEOUT_S=${STRATUS_LLM_TIMEOUT_S:-600} STRATUS_STEP_CHECK_ENABLED=false
mkdir -p "$OUT"
for item in $SAMPLE; do
  suite=${item%%:*} id=${item#*:}
  if [ -f "$OUT/$id/bench.json" ]; then
    echo "memory-traces: $id already recorded"
    continue
  fi
  echo "memory-traces: $suite $id"
  nice -n "$NICE" .venv/bin/stratus bench --suite "$suite" --policy llm --only "$id" --timeout "$TIMEOUT" \
    --llm-log "$HOME/.cache/stratus/llm/server.log" --out "$OUT/$id" || echo "memory-traces: $id failed"
done
injected
build
