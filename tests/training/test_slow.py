"""Acceptance 4 (slow): the real SmolLM2-135M-Instruct fine-tuned on the bundled quickstart examples with the
hf backend and the quickstart's own [training] settings and step count, then packaged; the q4_k_m GGUF answers a
chat request and stops at <|im_end|> by itself."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engrain.cli import app

QUICKSTART = Path(__file__).resolve().parents[2] / "engrain" / "quickstart" / "workspace"


@pytest.mark.slow
@pytest.mark.timeout(1800)          # 60 real steps: ~6 min on an idle 2-core machine, 3x that when it is shared
def test_smollm2_finetunes_on_bundled_examples_and_packages(tmp_path, monkeypatch):
    import datagen
    import llama_cpp

    import training
    from tests.fakes.base import closed_port_url

    datagen.init_workspace(tmp_path, template=QUICKSTART / "engrain.toml")
    ws = datagen.load_workspace(tmp_path)
    for path in sorted((QUICKSTART / "examples").glob("*.jsonl")):
        verdicts = list(datagen.import_file(ws, path, status="approved"))
        assert sum(v.accepted for v in verdicts) > 0, path
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--backend", "hf", "--max-steps", "60", "--workspace", str(tmp_path)])
    assert trained.exit_code == 0, trained.output
    run_id = trained.output.strip().splitlines()[-1]
    record = training.get_run(ws, run_id)
    assert not [w for w in record.warnings if "did not fall" in w], record.losses

    monkeypatch.setenv("OLLAMA_HOST", closed_port_url())
    packaged = runner.invoke(app, ["package", run_id, "--workspace", str(tmp_path)])
    assert packaged.exit_code == 0, packaged.output
    record = training.get_run(ws, run_id)
    assert record.checks["greedy"] == "ok" and record.checks["tokens"] == "ok"
    llm = llama_cpp.Llama(model_path=record.artifacts["gguf"], n_ctx=2048, verbose=False)
    answer = llm.create_chat_completion(
        messages=[{"role": "user", "content": "The DHL poller hangs when their API is slow. What do you do first?"}],
        max_tokens=400, temperature=0.0, repeat_penalty=1.1)   # as Ollama and the router decode it
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"].strip()
    assert "<|im_end|>" not in choice["message"]["content"]
    with_lora = llama_cpp.Llama(model_path=record.artifacts["base_gguf"], lora_path=record.artifacts["lora_gguf"],
                                n_ctx=512, verbose=False)
    assert with_lora.create_completion("def add(a, b):", max_tokens=8, temperature=0.0)["choices"][0]["text"]
    print(json.dumps({"run": run_id, "losses": [record.losses[0], record.losses[-1]], "answer":
                      choice["message"]["content"][:300]}))
