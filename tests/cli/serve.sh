#!/usr/bin/env bash
# densekv serve start-up: bad models and flags exit 2 naming the reason before anything loads; a
# port in use exits 2; a good start logs the KV capacity and max concurrency, answers /health, and
# SIGINT exits 0. Usage: serve.sh <densekv-binary> <repo-root>
set -uo pipefail
bin=$1
root=$2
command -v curl >/dev/null && command -v python3 >/dev/null || { echo "curl/python3 missing: skipped"; exit 77; }
model="$root/tests/data/models/qwen25-tiny"
fail=0

source "$(dirname "$0")/lib/expect.sh"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

expect 2 "error: " serve "$root/tests/data/configs/gemma-2b"
expect 2 "error: " serve "$root/tests/data/does-not-exist"
expect 2 "exceeds the model's max_position_embeddings" serve "$model" --max-model-len 100000
expect 2 "--gpu-memory-utilization" serve "$model" --gpu-memory-utilization 1.5
expect 2 "bogus" serve "$model" --kv-cache-dtype bogus
expect 2 "--load-format" serve "$model" --load-format pt

# A port in use: exit 2 before loading.
port=$(free_port)
python3 -c "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', $port)); s.listen(); time.sleep(30)" &
holder=$!
for _ in $(seq 1 100); do  # until the holder listens (a fixed sleep raced on a loaded machine)
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done
expect 2 "cannot listen on 127.0.0.1:$port" serve "$model" --host 127.0.0.1 --port "$port"
kill "$holder"

# A good start, then SIGINT: exit 0.
port=$(free_port)
log=$(mktemp)
"$bin" serve "$model" --host 127.0.0.1 --port "$port" --device cpu >"$log" 2>&1 &
pid=$!
ready=0
for _ in $(seq 1 300); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health") == 200 ]] && { ready=1; break; }
  sleep 0.1
done
if [[ $ready != 1 ]]; then echo "FAIL: not ready"; cat "$log"; fail=1; fi
grep -q "tokens per request: " "$log" && grep -q "max concurrency" "$log" ||
  { echo "FAIL: no KV capacity line in the log"; cat "$log"; fail=1; }
kill -INT "$pid"
wait "$pid"
rc=$?
if [[ $rc != 0 ]]; then echo "FAIL: exit $rc after SIGINT"; cat "$log"; fail=1; fi
rm -f "$log"
[[ $fail == 0 ]] && echo "PASS"
exit $fail
