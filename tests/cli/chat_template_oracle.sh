#!/usr/bin/env bash
# Oracle test for chat templates: every template x every conversation case is rendered by
# `densekv chat-template` and by Jinja2 set up as transformers sets it up
# (tools/render_chat_template.py, run with Debian's /usr/bin/python3 + python3-jinja2). The
# outputs must be byte-identical; when Jinja2 raises (raise_exception, undefined values, ...),
# densekv must fail too (exit 2).
#
# Templates: tests/data/chat_templates/*.jinja (official templates of Llama-3-8B-Instruct,
# Llama-3.2-1B-Instruct, Qwen2.5-7B-Instruct, Mistral-7B-Instruct-v0.1/v0.3; bos/eos from
# tokens.json), tests/data/chat_templates/features/*.jinja (interpreter features), a
# tokenizer_config.json with a list of named templates, and the real tokenizer_config.json files of
# ../shared/tokenizers/{qwen3,llama3_1} when present. Cases: tests/data/chat_templates/cases/*.json.
#
# Usage: chat_template_oracle.sh <densekv-binary> <repo-root>   (exit 77 = skipped)
set -euo pipefail
bin=$1
repo=$2
py=/usr/bin/python3
if ! "$py" -c 'import jinja2' 2>/dev/null; then
  echo "SKIP: $py with jinja2 (Debian python3-jinja2) is not installed"
  exit 77
fi
tmp=$(mktemp -d)
trap '[[ -n ${KEEP_TMP:-} ]] || rm -rf "$tmp"' EXIT
[[ -n ${KEEP_TMP:-} ]] && echo "work dir: $tmp"
export DENSEKV_CHAT_TEMPLATE_NOW=1721995200  # strftime_now: 26 Jul 2024 12:00 UTC, both sides
export TZ=UTC

# Model folders, per-case input files and Jinja2's expected outputs.
"$py" - "$repo" "$tmp" <<'PY'
import glob, json, os, shutil, sys
repo, tmp = sys.argv[1:]
sys.path.insert(0, os.path.join(repo, "tools"))
import jinja2
import render_chat_template as ref

data = os.path.join(repo, "tests", "data", "chat_templates")
tokens = json.load(open(os.path.join(data, "tokens.json")))
models = os.path.join(tmp, "models")
os.makedirs(models)

def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)

templates = sorted(glob.glob(os.path.join(data, "*.jinja"))) + sorted(glob.glob(os.path.join(data, "features", "*.jinja")))
for path in templates:
    name = os.path.splitext(os.path.basename(path))[0]
    d = os.path.join(models, name)
    os.makedirs(d)
    shutil.copy(path, os.path.join(d, "chat_template.jinja"))
    write_json(os.path.join(d, "tokenizer_config.json"), tokens.get(name, {"bos_token": "<s>", "eos_token": "</s>"}))

# The same feature template with \r\n line ends and with two trailing newlines.
for variant, transform in (("crlf", lambda t: t.replace("\n", "\r\n")), ("trailing_newlines", lambda t: t + "\n\n")):
    d = os.path.join(models, "whitespace_" + variant)
    os.makedirs(d)
    text = open(os.path.join(data, "features", "whitespace.jinja"), encoding="utf-8").read()
    open(os.path.join(d, "chat_template.jinja"), "w", encoding="utf-8", newline="").write(transform(text))
    write_json(os.path.join(d, "tokenizer_config.json"), {})

# tokenizer_config.json with named templates: "tool_use" must be picked when tools are given.
d = os.path.join(models, "named_list")
os.makedirs(d)
read = lambda p: open(os.path.join(data, p), encoding="utf-8").read()
write_json(os.path.join(d, "tokenizer_config.json"), {
    "bos_token": {"content": "<|begin_of_text|>", "lstrip": False}, "eos_token": "<|eot_id|>",
    "chat_template": [{"name": "default", "template": read("llama3_8b_instruct.jinja")},
                      {"name": "tool_use", "template": read("llama3_2_1b_instruct.jinja")}]})

shared = os.path.join(repo, "..", "shared", "tokenizers")
for name in ("qwen3", "llama3_1"):
    src = os.path.join(shared, name, "tokenizer_config.json")
    if not os.path.exists(src):
        print(f"note: {src} is absent; its template is skipped")
        continue
    d = os.path.join(models, "shared_" + name)
    os.makedirs(d)
    shutil.copy(src, d)

for path in sorted(glob.glob(os.path.join(data, "cases", "*.json"))):
    case = json.load(open(path, encoding="utf-8"))
    cdir = os.path.join(tmp, "cases", os.path.splitext(os.path.basename(path))[0])
    os.makedirs(cdir)
    write_json(os.path.join(cdir, "messages.json"), case["messages"])
    if "tools" in case:
        write_json(os.path.join(cdir, "tools.json"), case["tools"])
    if "extra_context" in case:
        write_json(os.path.join(cdir, "extra.json"), case["extra_context"])
    if case.get("add_generation_prompt"):
        open(os.path.join(cdir, "add_generation_prompt"), "w").close()
    for model in sorted(os.listdir(models)):
        out = os.path.join(tmp, "expected", model, os.path.basename(cdir))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            text = ref.render(os.path.join(models, model), case["messages"], case.get("tools"),
                              case.get("extra_context"), bool(case.get("add_generation_prompt")))
            open(out, "wb").write(text.encode("utf-8"))
        except jinja2.TemplateSyntaxError as e:  # test data must parse; only render errors compare
            sys.exit(f"{model}: Jinja2 cannot parse this template: {e}")
        except Exception as e:
            open(out + ".error", "w").write(f"{type(e).__name__}: {e}\n")
PY

pass=0
fail=0
errors_agreed=0
for model_dir in "$tmp"/models/*; do
  model=$(basename "$model_dir")
  for case_dir in "$tmp"/cases/*; do
    case=$(basename "$case_dir")
    args=(chat-template "$model_dir" --messages "$case_dir/messages.json")
    [[ -f $case_dir/tools.json ]] && args+=(--tools "$case_dir/tools.json")
    [[ -f $case_dir/extra.json ]] && args+=(--extra-context "$case_dir/extra.json")
    [[ -f $case_dir/add_generation_prompt ]] && args+=(--add-generation-prompt)
    expected=$tmp/expected/$model/$case
    set +e
    "$bin" "${args[@]}" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    set -e
    if [[ -f $expected.error ]]; then
      if [[ $rc -eq 2 ]]; then
        pass=$((pass + 1))
        errors_agreed=$((errors_agreed + 1))
      else
        fail=$((fail + 1))
        echo "FAIL $model/$case: Jinja2 raised ($(cat "$expected.error")) but densekv exited $rc"
      fi
    elif [[ $rc -ne 0 ]]; then
      fail=$((fail + 1))
      echo "FAIL $model/$case: densekv exited $rc: $(cat "$tmp/err")"
    elif cmp -s "$tmp/out" "$expected"; then
      pass=$((pass + 1))
    else
      fail=$((fail + 1))
      echo "FAIL $model/$case: output differs from Jinja2"
      diff <(cat -A "$expected") <(cat -A "$tmp/out") | head -20 || true
    fi
  done
done
echo "chat template oracle: $pass passed ($errors_agreed of them errors on both sides), $fail failed"
[[ $fail -eq 0 ]]
