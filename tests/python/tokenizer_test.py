"""llm.tokenizer and kiln.Tokenizer equal the tokenizers library's ids (tokenizer_golden.json), `kiln tokenize`, and
jinja2's chat template renderings; llm.chat equals `kiln run --chat`."""
from __future__ import annotations

import json
import shutil

import pytest

import kiln
from conftest import SOURCE_DIR, TOKENIZERS, kiln_cli, run_prompt

DATA = SOURCE_DIR / "tests" / "data" / "tokenizers"


def tokenizer_path(name):
    p = TOKENIZERS / name
    assert p.is_dir(), f"{p}: run scripts/fetch-tokenizers.sh (make test does)"
    return p


def test_encode_decode_equal_the_tokenizers_library():
    golden = json.loads((DATA / "tokenizer_golden.json").read_text())["cases"]
    toks = {}
    for c in golden:
        if c["tokenizer"] not in toks:
            toks[c["tokenizer"]] = kiln.Tokenizer(tokenizer_path(c["tokenizer"]))
        tok = toks[c["tokenizer"]]
        assert tok.encode(c["text"], c["add_special_tokens"]) == c["ids"], (c["tokenizer"], c["text"])
        assert tok.decode(c["ids"]) == c["decoded"], (c["tokenizer"], c["text"])
    assert len(toks) == 4


def test_llm_tokenizer_equals_kiln_tokenize(tiny_llm):
    tok = tiny_llm.tokenizer
    for text in ["def f(x):\n    return x", "  naïve ✓ 日本 \t\n", "<|bos|>x<|eos|>", ""]:
        for special in (True, False):
            args = ["tokenize", "--tokenizer", tiny_llm.engine_dir, "--text", text]
            ref = json.loads(kiln_cli(*args, *([] if special else ["--no-special-tokens"])).stdout)["ids"]
            assert tok.encode(text, add_special_tokens=special) == ref
        ids = tok.encode(text)
        ref = json.loads(kiln_cli("detokenize", "--tokenizer", tiny_llm.engine_dir, "--ids",
                                  ",".join(map(str, ids))).stdout)["text"]
        assert tok.decode(ids) == ref
    assert tok.decode(tok.encode("<|bos|>x"), skip_special_tokens=True) == "x"
    assert tok.vocab_size == 4096
    assert (tok.bos_token_id, tok.eos_token_id, tok.stop_token_ids) == (0, 1, [1])
    assert tok.token_to_id("<|pad|>") == 2 and tok.id_to_token(2) == "<|pad|>"
    assert tok.token_to_id("no such token") is None


def test_chat_template_equals_jinja2():
    cases = json.loads((DATA / "chat_templates.json").read_text())["tokenizer_configs"]
    for c in cases:
        tok = kiln.Tokenizer(tokenizer_path(c["tokenizer"]))
        assert tok.has_chat_template
        assert tok.apply_chat_template(c["messages"], c["add_generation_prompt"]) == c["expected"], c["name"]


TEMPLATE = ("{% for m in messages %}{{ bos_token if loop.first }}### {{ m['role'] }}\n{{ m['content'] }}\n"
            "{% endfor %}{% if add_generation_prompt %}### assistant\n{% endif %}")


@pytest.fixture(scope="module")
def chat_engine(tiny_engine, tmp_path_factory):
    """The tiny-code engine with a chat template added to its tokenizer_config.json."""
    d = tmp_path_factory.mktemp("chat") / "engine"
    shutil.copytree(tiny_engine, d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["chat_template"] = TEMPLATE
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return str(d)


def test_chat_equals_kiln_run_chat(chat_engine, tmp_path):
    question = "Write a function that adds two numbers."
    ref = run_prompt(chat_engine, tmp_path, "--prompt", question, "--chat", "--max-new-tokens", "32")
    with kiln.LLM(chat_engine, num_threads=2) as llm:
        [o] = llm.chat([{"role": "user", "content": question}], kiln.SamplingParams(max_tokens=32))
        assert o.prompt == f"<|bos|>### user\n{question}\n### assistant\n"
        assert o.prompt_token_ids == llm.tokenizer.encode(o.prompt, add_special_tokens=False)
        assert o.prompt_token_ids[0] == 0 and o.prompt_token_ids.count(0) == 1  # one BOS, from the template
        assert o.outputs[0].token_ids == ref["output_ids"]
        assert o.outputs[0].text == ref["text"]
        # A list of conversations, each with its own params.
        convs = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
                 [{"role": "user", "content": question}]]
        outs = llm.chat(convs, [kiln.SamplingParams(max_tokens=8), kiln.SamplingParams(max_tokens=32)])
        assert outs[0].prompt.startswith("<|bos|>### system\nBe brief.\n### user\n")
        assert outs[1].outputs[0].token_ids == ref["output_ids"]
        with pytest.raises(kiln.ArgumentTypeError, match="message 0"):
            llm.chat([{"role": "user"}])
        with pytest.raises(kiln.InvalidArgumentError, match="field 'name'"):
            llm.chat([{"role": "user", "content": "x", "name": "bob"}])
