# Shared by the e2e scripts: start `densekv serve` on a free loopback port with the tiny Qwen model
# of tests/data and stop it with SIGTERM (which must exit 0). Sourced with $bin, $root, $build set.
model="$root/tests/data/models/qwen25-tiny"
sdk="$(cd "$build" && pwd)/e2e/node_modules/openai"
[[ -f "$sdk/package.json" ]] || { echo "skipped: the OpenAI SDK is not installed (e2e.setup)"; exit 77; }
log=$(mktemp /tmp/densekv-e2e.XXXXXX.log)

start_server() {
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" serve "$model" --host 127.0.0.1 --port "$port" --served-model-name tiny --device cpu "$@" \
    >"$log" 2>&1 &
  pid=$!
  trap 'kill -9 "$pid" 2>/dev/null || true' EXIT  # never leave a server behind
  for _ in $(seq 1 600); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health") == 200 ]]; then
      export DENSEKV_URL="http://127.0.0.1:$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "server exited:"; cat "$log"; exit 1; }
    sleep 0.1
  done
  echo "server not ready in 60 s:"; cat "$log"; kill "$pid"; exit 1
}

stop_server() {
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  trap - EXIT
  if [[ $rc != 0 ]]; then echo "server exited $rc after SIGTERM:"; tail -20 "$log"; exit 1; fi
  rm -f "$log"
}

run_node() {  # run_node script.mjs: with NODE_PATH-free access to the SDK via DENSEKV_SDK
  DENSEKV_SDK="$sdk" node "$@"
}
