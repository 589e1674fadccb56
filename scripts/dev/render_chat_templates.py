#!/usr/bin/env python3
"""Renders the expectations of tests/data/tokenizers/chat_templates.json with jinja2, as transformers renders chat
templates, so that no expectation of tests/tokenizer/chat_template_test.cpp is written by hand.

    render_chat_templates.py            rewrites the file's "expected" and "error" fields from its inputs
    render_chat_templates.py --check    exits 1 if the file differs from a fresh rendering (a ctest runs this)

Exit code 77 (a skip for the test) when jinja2 is not installed (Debian: python3-jinja2, in scripts/install-deps.sh).

The file's sections and the context each input is rendered with (the C++ test builds the same contexts):
  cases:             template + messages: bos_token/eos_token where the case has them, messages,
                     add_generation_prompt, tools = None  -> "expected"
  errors:            the same, where the template calls raise_exception  -> "error" (its message)
  jinja:             template + "context" (variables)  -> "expected"
  tokenizer_configs: third_party/tokenizers/NAME/tokenizer_config.json (scripts/fetch-tokenizers.sh; files pinned
                     by their SHA-256) + messages: its chat_template, with its special tokens as Tokenizer::load
                     passes them (bos/eos/unk/pad/sep/cls/mask_token as strings, additional_special_tokens),
                     messages, add_generation_prompt, tools = None, documents = None  -> "expected"

The environment is transformers' (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
loop-control extension and {% generation %} blocks, whose body renders as is; raise_exception raises a
TemplateError with its message; tojson is json.dumps with ensure_ascii=False, indent, separators and sort_keys as
options, not jinja2's HTML-escaping filter). transformers' strftime_now global is left out: a rendering that reads
the clock could not be an expectation.
"""
import json
import os
import sys

try:
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    import jinja2.sandbox
except ImportError:
    print("render_chat_templates.py: jinja2 is not installed (Debian: python3-jinja2): skipped", file=sys.stderr)
    sys.exit(77)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data", "tokenizers", "chat_templates.json")
SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class GenerationBlocks(jinja2.ext.Extension):
    """transformers' {% generation %} ... {% endgeneration %} (the assistant-mask marker): the body renders as is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    @staticmethod
    def _body(caller):
        return caller()


def environment():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=[GenerationBlocks, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def case_context(c):
    ctx = {k: c[k] for k in ("bos_token", "eos_token") if k in c}
    ctx.update(messages=c["messages"], add_generation_prompt=c["add_generation_prompt"], tools=None)
    return ctx


def token_string(v):
    """A special token of tokenizer_config.json: a string or an {"content": ...} object (None otherwise)."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def tokenizer_config(name):
    path = os.path.join(ROOT, "third_party", "tokenizers", name, "tokenizer_config.json")
    if not os.path.exists(path):
        sys.exit(f"render_chat_templates.py: {path} is missing: run scripts/fetch-tokenizers.sh")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def tokenizer_context(cfg, c):
    ctx = {}
    for k in SPECIAL_KEYS:
        s = token_string(cfg.get(k))
        if s is not None:
            ctx[k] = s
    if isinstance(cfg.get("additional_special_tokens"), list):
        ctx["additional_special_tokens"] = [s for s in map(token_string, cfg["additional_special_tokens"])
                                            if s is not None]
    ctx.update(messages=c["messages"], add_generation_prompt=c["add_generation_prompt"], tools=None,
               documents=None)
    return ctx


def render_all(data):
    env = environment()
    out = json.loads(json.dumps(data))  # a copy, in the file's key order
    for c in out.get("cases", []):
        c["expected"] = env.from_string(c["template"]).render(**case_context(c))
    for c in out.get("errors", []):
        try:
            env.from_string(c["template"]).render(**case_context(c))
        except jinja2.exceptions.TemplateError as e:
            c["error"] = str(e)
        else:
            sys.exit(f"render_chat_templates.py: error case '{c['name']}' renders without an error")
    for c in out.get("jinja", []):
        c["expected"] = env.from_string(c["template"]).render(**c.get("context", {}))
    for c in out.get("tokenizer_configs", []):
        cfg = tokenizer_config(c["tokenizer"])
        c["expected"] = env.from_string(cfg["chat_template"]).render(**tokenizer_context(cfg, c))
    return out


def main(argv):
    check = argv == ["--check"]
    if argv and not check:
        sys.exit("usage: render_chat_templates.py [--check]")
    with open(DATA, encoding="utf-8") as f:
        text = f.read()
    fresh = json.dumps(render_all(json.loads(text)), indent=1, ensure_ascii=False) + "\n"
    if not check:
        with open(DATA, "w", encoding="utf-8") as f:
            f.write(fresh)
        print(f"wrote {os.path.relpath(DATA, ROOT)} (jinja2 {jinja2.__version__})")
        return 0
    if fresh == text:
        print(f"{os.path.relpath(DATA, ROOT)}: every expectation is jinja2's rendering (jinja2 {jinja2.__version__})")
        return 0
    old, new = json.loads(text), json.loads(fresh)
    for section in new:
        for a, b in zip(old.get(section, []), new[section]):
            for k in ("expected", "error"):
                if k in b and a.get(k) != b[k]:
                    print(f"{section} '{b.get('name', b.get('tokenizer'))}': {k} {a.get(k)!r} != jinja2's {b[k]!r}")
    print(f"{os.path.relpath(DATA, ROOT)} differs from jinja2's rendering: run scripts/dev/render_chat_templates.py "
          f"and review the diff", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
