"""The Ollama Modelfile for a packaged model, and `ollama create` through the ollama client."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from training.chat import OLLAMA_TEMPLATE, START, STOP
from training.errors import OllamaUnavailable, TrainingError

STOPS = (STOP, START)
# Ollama's own default repeat_penalty, written out so the file says how eval decoded (router/providers/llamacpp.py)
PARAMETERS = {"temperature": 0.2, "repeat_penalty": 1.1}


def render(gguf_name: str, *, system: str | None, adapter_note: tuple[str, str] | None = None) -> str:
    """FROM the merged GGUF (Ollama's ADAPTER directive is not in every version); TEMPLATE and stops are
    written out because Ollama falls back to `{{ .Prompt }}` for templates it does not recognise."""
    lines = [f"FROM ./{gguf_name}"]
    if adapter_note:
        base, adapter = adapter_note
        lines += ["# Alternative, base + LoRA adapter (Ollama versions with ADAPTER support):",
                  f"# FROM {base}", f"# ADAPTER ./{adapter}"]
    lines.append(f'TEMPLATE """{OLLAMA_TEMPLATE}"""')
    lines += [f'PARAMETER stop "{s}"' for s in STOPS]
    lines += [f"PARAMETER {k} {v}" for k, v in PARAMETERS.items()]
    if system:  # only a system turn the model was trained with: an unseen one changes what it does
        lines.append(f'SYSTEM """{system}"""')
    lines.append("")
    return "\n".join(lines)


def create(name: str, gguf: Path, *, system: str | None, host: str | None = None,
           on_status: Callable[[str], None] | None = None) -> str:
    """Upload `gguf` as a blob and create `name` from it; returns the model name Ollama reports."""
    import httpx
    import ollama

    client = ollama.Client(host=host, timeout=600)
    try:
        client.list()
    except (httpx.HTTPError, ConnectionError, ollama.ResponseError) as exc:
        raise OllamaUnavailable(f"no Ollama server answered at {host or 'OLLAMA_HOST/default'} ({exc})") from exc
    digest = client.create_blob(gguf)
    for progress in client.create(model=name, files={gguf.name: digest}, template=OLLAMA_TEMPLATE,
                                  parameters={"stop": list(STOPS), **PARAMETERS}, system=system or None,
                                  stream=True):
        if on_status and progress.status:
            on_status(progress.status)
    shown = client.show(name)
    if shown.template != OLLAMA_TEMPLATE:
        raise TrainingError(f"Ollama created {name} but reports a different template; check the server version")
    return name if ":" in name else f"{name}:latest"
