"""Base model resolution: the bundled SmolLM2 GGUF, a .gguf file, an HF folder or hub id already on disk.

Every backend trains on an HF folder. A GGUF is dequantized once into .engrain/cache/base/ (transformers
reads GGUF but refuses to save the result, so the weights are copied into a model built from the config).
The folder each run trains on is a "prepared" view of that base: weights linked, tokenizer re-saved with our
chat template and a plain ByteLevel decoder (see save_tokenizer).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from training.errors import BaseModelError

BUNDLED = "smollm2"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                    "chat_template.json", "vocab.json", "merges.txt", "added_tokens.json")


def resolve(spec: str, cache_dir: Path) -> Path:
    """An HF model folder for `spec` (converting a GGUF into the cache the first time)."""
    if spec == BUNDLED:
        from router import bundled_gguf

        return _from_gguf(bundled_gguf(), cache_dir)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise BaseModelError(f"base model {spec!r}: no such GGUF file")
        return _from_gguf(path.resolve(), cache_dir)
    if (path / "config.json").is_file():
        _check_config(path / "config.json")
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        found = Path(snapshot_download(spec, local_files_only=True))
    except Exception:  # the hub raises several kinds for "not on disk"; all mean the same here
        found = None
    if found is not None and (found / "config.json").is_file():
        return found
    raise BaseModelError(
        f"base model {spec!r} is neither {BUNDLED!r}, a .gguf file, an HF model folder (with config.json) nor a "
        "hub model id already downloaded to this machine; engrain never downloads models at run time")


def _check_config(config: Path) -> None:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaseModelError(f"{config} cannot be read as JSON ({exc}); restore the model folder or pick another "
                             "--base") from None
    if not isinstance(data, dict) or not (data.get("model_type") or data.get("architectures")):
        raise BaseModelError(f"{config} names no model_type or architectures, so it is not a model config; restore "
                             "the model folder or pick another --base")


@contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """One writer at a time in the base-model cache: two trainings started together (two MCP `train` calls) would
    otherwise both convert the same model and the second would find the folder taken."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _from_gguf(gguf: Path, cache_dir: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:10]
    out = cache_dir / "base" / f"{gguf.stem}-{key}"
    if (out / "config.json").is_file():
        return out
    with cache_lock(cache_dir):
        if (out / "config.json").is_file():     # converted by the run we waited for
            return out
        try:
            _convert_gguf(gguf, out)
        except Exception as exc:  # the GGUF readers raise struct, key, index and value errors for a damaged file
            raise BaseModelError(f"base model {gguf} cannot be read as a GGUF model ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else 'truncated file?'}); check the file "
                                 "or pick another --base") from exc
    return out


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(tmp)
    save_tokenizer(AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name), tmp, chat_template=None)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)


def save_tokenizer(tokenizer, folder: Path, *, chat_template: str | None) -> None:
    """Save `tokenizer` so llama.cpp's converter reads it right.

    transformers 5 re-saves byte-level BPE tokenizers with a ByteFallback+Replace+ByteLevel decoder
    sequence; convert_hf_to_gguf.py then takes the Llama-HF path and writes a vocabulary without merges
    that llama.cpp aborts on (exit code 0 all the same). A plain ByteLevel decoder gives the gpt2 vocab.
    """
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(folder)
    fix_decoder(Path(folder) / "tokenizer.json")


def fix_decoder(tokenizer_json: Path) -> None:
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    decoder = data.get("decoder") or {}
    parts = decoder.get("decoders", []) if decoder.get("type") == "Sequence" else []
    byte_level = [d for d in parts if d.get("type") == "ByteLevel"]
    if byte_level:
        data["decoder"] = byte_level[0]
        tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def prepare(base_dir: Path, out: Path) -> Path:
    """A folder with `base_dir`'s weights (linked) and its tokenizer carrying our chat template."""
    if (out / "config.json").is_file():
        return out
    with cache_lock(out.parent.parent):
        if not (out / "config.json").is_file():
            _prepare(base_dir, out)
    return out


def _prepare(base_dir: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    from training.chat import CHAT_TEMPLATE

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in base_dir.iterdir():
        if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES) and f.name not in _TOKENIZER_FILES:
            (tmp / f.name).symlink_to(f.resolve())
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    save_tokenizer(tokenizer, tmp, chat_template=CHAT_TEMPLATE)
    os.replace(tmp, out)


def prepared_base(ws, cfg) -> tuple[str, bool]:
    """The prepared HF folder a local backend trains on, and whether it is an earlier run (continued fine-tuning)."""
    from training import registry

    cache = Path(ws.state_dir) / "cache"
    if _is_run(ws, cfg.base):
        from training.merge import merged_folder

        return str(merged_folder(ws, registry.get_run(ws, cfg.base))), True
    hf_dir = resolve(cfg.base, cache)
    key = hashlib.sha256(str(hf_dir).encode()).hexdigest()[:10]
    return str(prepare(hf_dir, cache / "prepared" / f"{hf_dir.name}-{key}")), False


def _is_run(ws, spec: str) -> bool:
    from training import registry

    try:
        return (registry.run_dir(ws, spec) / "run.json").is_file()
    except registry.RunNotFound:    # a folder or file path: not a run id
        return False
