"""Shared test setup: everything offline, nothing from the Hugging Face hub."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


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
def postgres():
    """One real PostgreSQL server for the whole session (tests/postgres_server.py), deleted afterwards."""
    from tests import postgres_server

    server = postgres_server.start()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres) -> str:
    """A fresh, empty database on the session's server, for one test."""
    return postgres.create_database(f"test_{len(postgres.databases)}")
