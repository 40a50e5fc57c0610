"""`package`: merge -> GGUF f16 -> checks -> quantize -> LoRA GGUF -> Modelfile -> `ollama create`."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from training import checks, llamacpp, merge, modelfile, registry
from training.config import TrainingConfig
from training.errors import TrainingConfigError, TrainingError
from training.registry import RunRecord


def package(ws, run_id: str, *, quant: str | None = None, name: str | None = None,
            on_status: Callable[[str], None] | None = None) -> RunRecord:
    say = on_status or (lambda _msg: None)
    record = registry.get_run(ws, run_id)
    if record.backend == "hosted":
        raise TrainingError(f"run {run_id} was trained by the hosted API: its model {record.hosted_model!r} lives at "
                         "the provider, there is nothing to package locally")
    cfg = TrainingConfig.model_validate(record.config)
    quant = (quant or cfg.quant).lower()
    if quant not in llamacpp.QUANTS:
        raise TrainingConfigError(f"unknown quantization {quant!r}; choose one of {', '.join(llamacpp.QUANTS)}")
    out = registry.run_dir(ws, run_id) / "package"
    out.mkdir(parents=True, exist_ok=True)
    say("merging the adapter into the base model")
    merged = merge.merged_folder(ws, record)
    say("converting to GGUF f16 with llama.cpp's convert_hf_to_gguf.py")
    f16 = _fresh(out / "model.f16.gguf")
    llamacpp.hf_to_gguf(merged, f16)
    say("checking the GGUF against the merged model (metadata, tokens, greedy output)")
    try:
        record.checks = checks.verify(f16, merged)
    except checks.ConversionMismatch:
        f16.rename(out / "model.f16.rejected.gguf")
        raise
    notes = []
    fallback = llamacpp.k_quant_fallback(json.loads((merged / "config.json").read_text()), quant)
    if fallback:
        notes.append(fallback)
        say(f"warning: {fallback}")
    say(f"quantizing to {quant}")
    quantized = llamacpp.quantize(f16, _fresh(out / f"model.{quant}.gguf"), quant)
    say("writing the adapter as a GGUF LoRA (and its base as GGUF f16)")
    base_gguf = _base_gguf(Path(record.base_path))
    lora = llamacpp.lora_to_gguf(Path(record.artifacts["adapter"]), Path(record.base_path),
                                 _fresh(out / "adapter.f16.gguf"))
    mf = out / "Modelfile"
    system = cfg.system if trained_with_system(registry.run_dir(ws, run_id)) else None
    mf.write_text(modelfile.render(quantized.name, system=system, adapter_note=(str(base_gguf), lora.name)),
                  encoding="utf-8")
    record.artifacts.update({"merged_hf": str(merged), "gguf_f16": str(f16), "gguf": str(quantized),
                             "lora_gguf": str(lora), "base_gguf": str(base_gguf), "modelfile": str(mf)})
    record.metrics["gguf_bytes"] = float(quantized.stat().st_size)
    ollama_name = name or f"engrain-{run_id}".lower()
    try:
        say(f"creating Ollama model {ollama_name}")
        record.ollama_name = modelfile.create(ollama_name, quantized, system=system, on_status=say)
    except modelfile.OllamaUnavailable as exc:
        notes.append(f"{exc}; later run: ollama create {ollama_name} -f {mf}")
        say(f"skipped ollama create: {notes[-1]}")
    record.warnings = list(dict.fromkeys(record.warnings + notes))
    return registry.save(ws, record)


def trained_with_system(run_folder: Path) -> bool:
    """Whether any example the run trained on opened with a system turn (the exported stage data says)."""
    for path in run_folder.glob("stages/*/data/train.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            messages = json.loads(line).get("messages") if line.strip() else None
            if messages and messages[0].get("role") == "system":
                return True
    return False


def _fresh(path: Path) -> Path:
    if path.exists():
        path.unlink()
    return path


def _base_gguf(base_dir: Path) -> Path:
    """The base model as GGUF f16 beside its folder (what the LoRA GGUF applies to), converted once."""
    target = base_dir.with_name(base_dir.name + ".f16.gguf")
    if not target.is_file():
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        llamacpp.hf_to_gguf(base_dir, tmp)
        os.replace(tmp, target)
    return target
