"""Fixtures for training tests: a tiny Llama built from the bundled SmolLM2 tokenizer (random weights, 2 layers,
hidden 64; cached across sessions by pytest's cache) and workspaces seeded with the bundled examples."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "engrain" / "quickstart" / "workspace"
PER_CATEGORY = 3


def build_tiny_llama(out: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from router import bundled_gguf

    gguf = bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, initializer_range=0.1, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    LlamaForCausalLM(config).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(request) -> Path:
    folder = Path(request.config.cache.mkdir("engrain-training")) / "tiny-llama-v2"
    return folder if (folder / "config.json").is_file() else build_tiny_llama(folder)


@pytest.fixture(scope="session")
def seeded_workspace(tmp_path_factory) -> Path:
    """A quickstart workspace with PER_CATEGORY approved examples per category (built once)."""
    import json

    import datagen
    from training import TOML_TEMPLATE

    root = tmp_path_factory.mktemp("seeded")
    datagen.init_workspace(root, template=QUICKSTART / "engrain.toml", extra_toml=[TOML_TEMPLATE])
    ws = datagen.load_workspace(root)
    for path in sorted((QUICKSTART / "examples").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()[:PER_CATEGORY]]
        verdicts = datagen.submit(ws, rows, status="approved", generator="human")
        assert all(v.accepted for v in verdicts), [v.reasons for v in verdicts if not v.accepted]
    return root


@pytest.fixture
def workspace(seeded_workspace, tmp_path):
    """A fresh copy of the seeded workspace; returns a function(toml_extra="") -> Workspace."""
    import datagen

    root = tmp_path / "ws"
    shutil.copytree(seeded_workspace, root)

    def make(training_toml: str = "") -> "datagen.Workspace":
        if training_toml:
            text = (root / "engrain.toml").read_text()
            start = text.index("[training]")
            (root / "engrain.toml").write_text(text[:start] + training_toml)
        return datagen.load_workspace(root)

    return make
