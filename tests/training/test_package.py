"""Acceptance 2, 3 and 6: packaging a trained tiny model.

2: the q4_k_m GGUF loads in llama-cpp-python, carries our chat template and stops at <|im_end|>; the LoRA GGUF
   loads as an adapter on the base GGUF (and answers like the merged model).
3: `ollama create` against the loopback Ollama server: right blob uploaded, right fields; the registry records
   the name.
6: the post-conversion checks refuse a deliberately broken conversion (the tokenizer.json decoder trap, and
   corrupted weights), and nothing is packaged.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engrain.cli import app
from tests.fakes.ollama import start_ollama
from tests.training.test_train import tiny_toml



@pytest.fixture(scope="module")
def trained(tiny_model, seeded_workspace, tmp_path_factory):
    """(workspace root, run id) of a tiny hf run, trained once for this module."""
    import datagen
    import training

    root = tmp_path_factory.mktemp("pkg") / "ws"
    shutil.copytree(seeded_workspace, root)
    text = (root / "engrain.toml").read_text()
    (root / "engrain.toml").write_text(text[:text.index("[training]")] + tiny_toml(tiny_model))
    ws = datagen.load_workspace(root)
    return root, training.train(ws, backend="hf", max_steps=4).id


@pytest.fixture
def fresh_copy(trained, tmp_path):
    """A copy of the trained workspace, so each test packages from scratch."""
    import datagen

    root, run_id = trained
    shutil.copytree(root, tmp_path / "ws", symlinks=True)
    return datagen.load_workspace(tmp_path / "ws"), run_id


@pytest.fixture
def ollama(monkeypatch):
    fake = start_ollama(models={})
    monkeypatch.setenv("OLLAMA_HOST", fake.url)
    yield fake
    fake.stop()


def test_package_builds_checked_gguf_modelfile_and_ollama_model(fresh_copy, ollama):
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from transformers import AutoTokenizer

    import training
    from training.chat import CHAT_TEMPLATE, OLLAMA_TEMPLATE

    ws, run_id = fresh_copy
    result = CliRunner().invoke(app, ["package", run_id, "--name", "tiny-engrain", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    record = training.get_run(ws, run_id)
    art = {k: Path(v) for k, v in record.artifacts.items()}
    assert art["gguf"].name == "model.q4_k_m.gguf" and art["gguf"].stat().st_size > 0
    assert record.checks["tokens"] == "ok" and record.checks["greedy"] == "ok" and record.checks["metadata"] == "ok"
    assert any("not a multiple of 256" in w for w in record.warnings)  # hidden 64: k-quant fallback warned

    # 2: the quantized GGUF carries our template and <|im_end|> as EOS, and llama.cpp stops there.
    tokenizer = AutoTokenizer.from_pretrained(str(art["merged_hf"]))
    llm = llama_cpp.Llama(model_path=str(art["gguf"]), n_ctx=512, verbose=False)
    assert llm.metadata["tokenizer.chat_template"] == CHAT_TEMPLATE
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert llm.token_eos() == im_end
    messages = [{"role": "user", "content": "Where is the config parsed?"}]
    rendered = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>",
                                   bos_token="<|im_start|>")(messages=messages).prompt
    assert rendered == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # The random tiny model is pushed to <|im_end|> after three tokens: generation must end there, not at
    # max_tokens, and the stop token must not leak into the text.
    forced = llm.create_chat_completion(messages=messages, max_tokens=32, temperature=0.0,
                                        logit_bias={im_end: 30.0})
    choice = forced["choices"][0]
    assert choice["finish_reason"] == "stop" and "<|im_end|>" not in choice["message"]["content"]
    free = llm.create_chat_completion(messages=messages, max_tokens=8, temperature=0.0)
    assert free["usage"]["completion_tokens"] <= 8

    # 2: the LoRA GGUF applies to the base GGUF: its next-token logits are the merged model's, not the base's.
    import numpy as np

    assert art["lora_gguf"].name == "adapter.f16.gguf"
    prompt = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)

    def next_logits(**kw):
        model = llama_cpp.Llama(n_ctx=256, logits_all=True, verbose=False, **kw)
        model.eval(prompt)
        return np.array(model.scores[len(prompt) - 1])

    merged = next_logits(model_path=str(art["gguf_f16"]))
    with_lora = next_logits(model_path=str(art["base_gguf"]), lora_path=str(art["lora_gguf"]))
    base_only = next_logits(model_path=str(art["base_gguf"]))
    assert np.abs(with_lora - merged).max() < 0.25 * np.abs(base_only - merged).max()

    # The Modelfile: FROM the quantized GGUF, TEMPLATE + stops matching training, and no SYSTEM: the examples
    # trained on carry no system turn, so one would put the model in a layout it never saw (issue 14).
    modelfile = art["modelfile"].read_text()
    assert modelfile.startswith("FROM ./model.q4_k_m.gguf\n")
    assert f'TEMPLATE """{OLLAMA_TEMPLATE}"""' in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and 'SYSTEM """' not in modelfile

    # 3: the right blob went up, /api/create got the right fields, the registry has the name.
    digest = "sha256:" + hashlib.sha256(art["gguf"].read_bytes()).hexdigest()
    creates = [r.body for r in ollama.requests if r.path == "/api/create"]
    assert creates and creates[-1]["model"] == "tiny-engrain"
    assert creates[-1]["files"] == {"model.q4_k_m.gguf": digest}
    assert creates[-1]["template"] == OLLAMA_TEMPLATE
    assert creates[-1]["parameters"]["stop"] == ["<|im_end|>", "<|im_start|>"]
    assert not creates[-1].get("system")
    assert any(r.path == f"/api/blobs/{digest}" and r.method == "POST" for r in ollama.requests)
    created = ollama.models["tiny-engrain:latest"]
    assert created.gguf.read_bytes() == art["gguf"].read_bytes()
    assert record.ollama_name == "tiny-engrain:latest"
    listed = json.loads(CliRunner().invoke(app, ["models", "--json", "--workspace", str(ws.root)]).output)
    assert listed[0]["ollama_name"] == "tiny-engrain:latest"


def test_package_without_ollama_still_packages_and_says_how(fresh_copy, monkeypatch):
    from tests.fakes.base import closed_port_url

    import training

    ws, run_id = fresh_copy
    monkeypatch.setenv("OLLAMA_HOST", closed_port_url())
    record = training.package(ws, run_id, quant="q8_0")
    assert Path(record.artifacts["gguf"]).name == "model.q8_0.gguf"
    assert record.ollama_name is None
    assert any(f"ollama create engrain-{run_id}" in w for w in record.warnings)


def _trap_decoder(tokenizer_json: Path) -> None:
    """What transformers 5 writes when it re-saves some byte-level BPE tokenizers (see facts.md)."""
    data = json.loads(tokenizer_json.read_text())
    data["model"]["byte_fallback"] = True
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    tokenizer_json.write_text(json.dumps(data))


def test_checks_refuse_the_tokenizer_decoder_trap(fresh_copy, monkeypatch):
    from training import base

    ws, run_id = fresh_copy
    monkeypatch.setattr(base, "fix_decoder", _trap_decoder)
    result = CliRunner().invoke(app, ["package", run_id, "--workspace", str(ws.root)])
    assert result.exit_code == 1
    assert "does not match the merged model, not packaging it" in result.output
    assert "tokenizer.ggml.merges" in result.output or "tokens differ" in result.output
    _assert_nothing_packaged(ws, run_id)


def test_checks_refuse_corrupted_weights(fresh_copy, monkeypatch):
    from gguf import GGUFReader

    from training import llamacpp

    real = llamacpp.hf_to_gguf

    def convert_then_corrupt(model_dir, out):
        real(model_dir, out)
        reader = GGUFReader(str(out), "r+")
        norm = next(t for t in reader.tensors if t.name == "output_norm.weight")
        norm.data[:] = -norm.data * 3      # flips every logit: greedy output cannot match
        return out

    ws, run_id = fresh_copy
    monkeypatch.setattr(llamacpp, "hf_to_gguf", convert_then_corrupt)
    result = CliRunner().invoke(app, ["package", run_id, "--workspace", str(ws.root)])
    assert result.exit_code == 1
    assert "greedy: greedy output differs" in result.output
    _assert_nothing_packaged(ws, run_id)


def _assert_nothing_packaged(ws, run_id):
    import training

    record = training.get_run(ws, run_id)
    assert "gguf" not in record.artifacts and record.ollama_name is None
    folder = ws.state_dir / "runs" / run_id / "package"
    assert not list(folder.glob("model.q*.gguf")) and not (folder / "Modelfile").exists()
    assert (folder / "model.f16.rejected.gguf").is_file()
