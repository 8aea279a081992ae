#!/usr/bin/env bash
# densekv tokenize on the real Llama-3.1 / Qwen3 tokenizer files (skipped, exit 77, when absent).
# Usage: tokenize.sh <densekv-binary> <repo-root>
set -euo pipefail
bin=$1
root=$2
tok=$root/../shared/tokenizers
if [[ ! -f $tok/llama3_1/tokenizer.json || ! -f $tok/qwen3/tokenizer.json ]]; then
  echo "skipped: $tok is absent"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'Hello world' > "$tmp/hello.txt"
check() {  # expected, then the command
  local want=$1
  shift
  local got
  got=$("$@")
  if [[ "$got" != "$want" ]]; then
    echo "FAIL: $* -> '$got', want '$want'"
    exit 1
  fi
}
check '[9906,1917]' "$bin" tokenize "$tok/llama3_1" --text-file "$tmp/hello.txt" --json
check '9906 1917' "$bin" tokenize "$tok/llama3_1" --text-file "$tmp/hello.txt"
check '[128000,9906,1917]' "$bin" tokenize "$tok/llama3_1" --text-file "$tmp/hello.txt" --json --add-special-tokens
check '[9707,1879]' "$bin" tokenize "$tok/qwen3" --text-file "$tmp/hello.txt" --json
# Special-token text is parsed by default (like vLLM), kept as text with --no-parse-special.
printf '<|im_start|>user' > "$tmp/chat.txt"
check '[151644,872]' "$bin" tokenize "$tok/qwen3" --text-file "$tmp/chat.txt" --json
check '[27,91,318,4906,91,29,872]' "$bin" tokenize "$tok/qwen3" --text-file "$tmp/chat.txt" --json --no-parse-special
# A bad folder is a named error with exit 2.
set +e
"$bin" tokenize "$tmp" --text-file "$tmp/hello.txt" 2> "$tmp/err"
rc=$?
set -e
if [[ $rc != 2 ]] || ! grep -q "tokenizer.json" "$tmp/err"; then
  echo "FAIL: missing tokenizer.json gave rc=$rc: $(cat "$tmp/err")"
  exit 1
fi
echo "ok"
