#!/usr/bin/env python3
"""Reference chat-template renderer: Jinja2 set up the way Hugging Face transformers sets it up.

Mirrors transformers' chat_template_utils (_compile_jinja_template / render_jinja_template) and
its template lookup, so densekv's own Jinja interpreter can be compared with it byte for byte:

  * ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    plus a no-op {% generation %} tag (transformers' AssistantTracker renders its body in place)
  * filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=False)
  * globals raise_exception (TemplateError) and strftime_now (datetime.now().strftime)
  * render(messages=..., tools=... or None, documents=None, add_generation_prompt=...,
           **special tokens (bos_token/eos_token when set), **extra context)
  * the template: DIR/chat_template.jinja when present, else tokenizer_config.json's chat_template
    (a string, or a list of {name, template}: "tool_use" when tools are given, else "default").

strftime_now uses DENSEKV_CHAT_TEMPLATE_NOW (seconds since the epoch) when set, as densekv does.

Usage: render_chat_template.py DIR --messages F.json [--tools F.json] [--add-generation-prompt]
                               [--extra-context F.json]
Prints the rendered text with no trailing newline. Exit 3 (message on stderr) when the template
raises (raise_exception or any other Jinja error while rendering).
"""
import argparse
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %} renders its body unchanged (as transformers does
    when it is not tracking assistant token masks)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


def compile_template(source):
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        now = os.environ.get("DENSEKV_CHAT_TEMPLATE_NOW")
        when = datetime.fromtimestamp(int(now)) if now else datetime.now()
        return when.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def token_string(config, key):
    value = config.get(key)
    if isinstance(value, dict):
        value = value.get("content")
    return value


def load(model_dir, with_tools):
    config = {}
    config_path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    jinja_path = os.path.join(model_dir, "chat_template.jinja")
    if os.path.exists(jinja_path):
        with open(jinja_path, encoding="utf-8", newline="") as f:
            source = f.read()
    else:
        source = config.get("chat_template")
        if isinstance(source, list):
            named = {t["name"]: t["template"] for t in source}
            source = named["tool_use"] if with_tools and "tool_use" in named else named["default"]
        if source is None:
            sys.exit(f"{model_dir} has no chat template")
    special = {}
    for key in ("bos_token", "eos_token"):
        value = token_string(config, key)
        if value:
            special[key] = value
    return source, special


def render(model_dir, messages, tools=None, extra=None, add_generation_prompt=False):
    """The text transformers' apply_chat_template(tokenize=False) would produce; raises
    TemplateError (or whatever the template raised) on failure."""
    source, special = load(model_dir, tools is not None)
    kwargs = {**special, **(extra or {})}
    return compile_template(source).render(messages=messages, tools=tools, documents=None,
                                           add_generation_prompt=add_generation_prompt, **kwargs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--messages", required=True)
    ap.add_argument("--tools")
    ap.add_argument("--extra-context")
    ap.add_argument("--add-generation-prompt", action="store_true")
    args = ap.parse_args()

    def read(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    try:
        text = render(args.dir, read(args.messages), read(args.tools) if args.tools else None,
                      read(args.extra_context) if args.extra_context else None,
                      args.add_generation_prompt)
    except Exception as e:  # raise_exception, undefined values, type errors inside the template
        print(f"template error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(3)
    sys.stdout.buffer.write(text.encode("utf-8"))


if __name__ == "__main__":
    main()
