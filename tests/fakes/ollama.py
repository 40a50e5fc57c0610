"""A loopback server speaking Ollama's HTTP API, with real inference (llama-cpp-python) behind it.

Routes (https://github.com/ollama/ollama/blob/main/docs/api.md):
  POST /api/chat       {model, messages, tools?, stream=true, options?, format?, keep_alive?}
                       NDJSON `{"model","created_at","message":{"role":"assistant","content"},"done":false}`
                       lines, then a `done: true` object with done_reason and the count/duration fields.
  POST /api/generate   {model, prompt, system?, raw?, stream=true, options?}; same shape with `response`.
  GET  /api/tags       {"models": [{name, model, modified_at, size, digest, details}]}
  POST /api/show       {model} -> {modelfile, parameters, template, system, details, model_info, capabilities}
  POST /api/create     {model, from?, files?: {name: "sha256:<hex>"}, adapters?, template?, system?,
                       parameters?, stream=true} -> status lines ... {"status":"success"}; the model then
                       appears in /api/tags and /api/show and answers /api/chat with real inference.
  HEAD /api/blobs/sha256:<hex>   200 if the blob exists, else 404.
  POST /api/blobs/sha256:<hex>   stores the body; 201, or 400 when its sha256 differs from the digest.
  DELETE /api/delete   {model};  GET /api/version.
Errors are `{"error": "..."}` with 400/404 like Ollama's.

Differences from a real Ollama, on purpose: prompts are rendered with the GGUF's own chat template (a
created model's `template` is stored and shown, not executed); `num_predict` defaults to 128 to keep tests
fast; `quantize` is refused. A `responder` (see hosted.Reply) replaces inference for deterministic tests,
e.g. tool calls.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from tests.fakes import llm
from tests.fakes.base import FakeServer, Handler, start
from tests.fakes.hosted import Call, Reply, split_words

_PARAM_DEFAULTS = {"temperature": 0.8, "top_p": 0.9, "top_k": 40, "num_predict": 128, "repeat_penalty": 1.1}


@dataclass
class OllamaModel:
    name: str
    gguf: Path
    adapters: tuple[str, ...] = ()
    template: str = ""
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    parent: str = ""
    modified_at: str = field(default_factory=lambda: _now())

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.name}{self.gguf}{self.adapters}{self.modified_at}".encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _norm(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _error(status: int, message: str) -> dict:
    return {"error": message}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


class _OllamaHandler(Handler):
    fake: "OllamaFake"
    routes = {("POST", "/api/chat"): "chat", ("POST", "/api/generate"): "generate",
              ("GET", "/api/tags"): "tags", ("POST", "/api/show"): "show", ("POST", "/api/create"): "create",
              ("HEAD", "/api/blobs/"): "blob_head", ("POST", "/api/blobs/"): "blob_post",
              ("DELETE", "/api/delete"): "delete", ("GET", "/api/version"): "version"}

    def _json_body(self) -> dict | None:
        raw = self.read_body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError as exc:
            self.record(None)
            self.send_json(400, {"error": f"invalid JSON: {exc}"})
            return None
        self.record(body)
        if not isinstance(body, dict):
            self.send_json(400, {"error": "request body must be a JSON object"})
            return None
        return body

    def _model(self, body: dict) -> OllamaModel | None:
        name = body.get("model") or body.get("name")
        if not name:
            self.send_json(400, {"error": "model is required"})
            return None
        model = self.fake.models.get(_norm(name))
        if model is None:
            self.send_json(404, {"error": f"model '{name}' not found"})
        return model

    # --- inference -----------------------------------------------------------------------------------
    def chat(self, path: str) -> None:
        body = self._json_body()
        if body is None or (model := self._model(body)) is None:
            return
        if self.apply_fault(self.fake.take_fault(path), _error):
            return
        messages = body.get("messages")
        if not isinstance(messages, list):
            self.send_json(400, {"error": "messages must be a list"})
            return
        msgs = [{"role": m.get("role", "user"), "content": _text(m.get("content"))} for m in messages]
        if model.system and not any(m["role"] == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": model.system})
        self._answer(body, model, "message", lambda opts: self._pieces_chat(model, msgs, body, opts), msgs)

    def generate(self, path: str) -> None:
        body = self._json_body()
        if body is None or (model := self._model(body)) is None:
            return
        if self.apply_fault(self.fake.take_fault(path), _error):
            return
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            self.send_json(400, {"error": "prompt must be a string"})
            return
        if not prompt:  # Ollama loads the model and answers done with an empty response
            self.send_json(200, {"model": body["model"], "created_at": _now(), "response": "", "done": True,
                                 "done_reason": "load"})
            return
        msgs = ([{"role": "system", "content": body.get("system") or model.system}]
                if (body.get("system") or model.system) else []) + [{"role": "user", "content": prompt}]
        if body.get("raw"):
            def pieces(opts: dict) -> Iterator[str]:
                return llm.complete_stream(model.gguf, prompt, adapters=model.adapters, **opts)
        else:
            def pieces(opts: dict) -> Iterator[str]:
                return self._pieces_chat(model, msgs, body, opts)
        self._answer(body, model, "response", pieces, msgs)

    def _pieces_chat(self, model: OllamaModel, msgs: list[dict], body: dict, opts: dict) -> Iterator[str]:
        if self.fake.responder is not None:
            reply = self.fake.responder(Call("ollama", body["model"], msgs,
                                             [t.get("function", {}).get("name", "") for t in body.get("tools") or []],
                                             body))
            self._tool_calls = reply.tool_calls
            return iter(split_words(reply.text) if reply.text else [])
        return llm.chat_stream(model.gguf, msgs, adapters=model.adapters, **opts)

    def _options(self, model: OllamaModel, body: dict) -> dict:
        opts = {**_PARAM_DEFAULTS, **model.parameters, **(body.get("options") or {})}
        stop = opts.get("stop")
        return {"max_tokens": int(opts["num_predict"]) if int(opts["num_predict"]) > 0 else 512,
                "temperature": float(opts["temperature"]), "top_p": float(opts["top_p"]),
                "top_k": int(opts["top_k"]), "repeat_penalty": float(opts["repeat_penalty"]), "seed": opts.get("seed"),
                "stop": [stop] if isinstance(stop, str) else stop}

    def _answer(self, body: dict, model: OllamaModel, field_name: str,
                pieces: Callable[[dict], Iterator[str]], msgs: list[dict]) -> None:
        self._tool_calls: list[tuple[str, dict]] = []
        start_ns = time.monotonic_ns()
        opts = self._options(model, body)
        prompt_tokens = sum(len(m["content"].split()) + 4 for m in msgs)

        def obj(content: str, done: bool, **extra: Any) -> dict:
            out: dict[str, Any] = {"model": body["model"], "created_at": _now()}
            if field_name == "message":
                out["message"] = {"role": "assistant", "content": content}
                if done and self._tool_calls:
                    out["message"]["tool_calls"] = [{"function": {"name": n, "arguments": a}}
                                                    for n, a in self._tool_calls]
            else:
                out["response"] = content
            out["done"] = done
            out.update(extra)
            return out

        def final(count: int) -> dict:
            took = time.monotonic_ns() - start_ns
            return {"done_reason": "stop", "total_duration": took, "load_duration": 0,
                    "prompt_eval_count": prompt_tokens, "prompt_eval_duration": took // 4,
                    "eval_count": count, "eval_duration": took - took // 4}

        if body.get("stream", True) is False:
            text = "".join(pieces(opts))
            self.send_json(200, obj(text, True, **final(max(1, len(text.split())))))
            return

        def lines() -> Iterator[bytes]:
            count = 0
            for piece in pieces(opts):
                count += 1
                yield json.dumps(obj(piece, False)).encode() + b"\n"
            yield json.dumps(obj("", True, **final(count))).encode() + b"\n"

        fault = getattr(self, "_die", None)
        self.stream("application/x-ndjson", lines(), fault)

    def apply_fault(self, fault, error_body) -> bool:  # type: ignore[override]
        self._die = fault if fault is not None and fault.kind == "die" else None
        return super().apply_fault(fault, error_body)

    # --- models --------------------------------------------------------------------------------------
    def tags(self, path: str) -> None:
        self.record(None)
        self.send_json(200, {"models": [self.fake.describe(m) for m in self.fake.models.values()]})

    def show(self, path: str) -> None:
        body = self._json_body()
        if body is None or (model := self._model(body)) is None:
            return
        params = "\n".join(f"{k:<30} {json.dumps(v) if isinstance(v, str) else v}"
                           for k, vs in model.parameters.items() for v in (vs if isinstance(vs, list) else [vs]))
        modelfile = [f"# Modelfile generated by \"ollama show\"", f"FROM {model.gguf}"]
        modelfile += [f"ADAPTER {a}" for a in model.adapters]
        if model.template:
            modelfile.append(f'TEMPLATE """{model.template}"""')
        if model.system:
            modelfile.append(f'SYSTEM """{model.system}"""')
        modelfile += [f"PARAMETER {line}" for line in params.splitlines()]
        capabilities = ["completion"] + (["tools"] if ".Tools" in model.template else [])
        self.send_json(200, {"license": "", "modelfile": "\n".join(modelfile) + "\n", "parameters": params,
                             "template": model.template, "system": model.system,
                             "details": self.fake.describe(model)["details"],
                             "model_info": self.fake.model_info(model), "capabilities": capabilities,
                             "modified_at": model.modified_at})

    def create(self, path: str) -> None:
        body = self._json_body()
        if body is None:
            return
        name = body.get("model") or body.get("name")
        if not name:
            self.send_json(400, {"error": "model is required"})
            return
        if body.get("quantize"):
            self.send_json(400, {"error": "quantize is not supported by this fake Ollama"})
            return
        files, adapters = body.get("files") or {}, body.get("adapters") or {}
        if not body.get("from") and not files:
            self.send_json(400, {"error": "neither 'from' or 'files' was specified"})
            return
        status: list[str] = []
        base: OllamaModel | None = None
        if body.get("from"):
            base = self.fake.models.get(_norm(body["from"]))
            if base is None:
                self.send_json(404, {"error": f"model '{body['from']}' not found"})
                return
        blobs: dict[str, Path] = {}
        for fname, digest in {**files, **adapters}.items():
            blob = self.fake.blob_path(digest)
            if blob is None or not blob.exists():
                self.send_json(400, {"error": f"blob {digest} for {fname} not found; upload it to /api/blobs first"})
                return
            with blob.open("rb") as f:
                if f.read(4) != b"GGUF":
                    self.send_json(400, {"error": f"{fname}: invalid file magic (not a GGUF file)"})
                    return
            blobs[fname] = blob
            status.append(f"using existing layer {digest}")
        ggufs = [blobs[f] for f in files]
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            self.send_json(400, {"error": "parameters must be an object"})
            return
        model = OllamaModel(
            name=_norm(name),
            gguf=ggufs[0] if ggufs else base.gguf,  # type: ignore[union-attr]
            adapters=tuple(str(blobs[a]) for a in adapters) or (base.adapters if base and not ggufs else ()),
            template=body.get("template") or (base.template if base else ""),
            system=body.get("system") or (base.system if base else ""),
            parameters={**(base.parameters if base else {}), **params},
            parent=body.get("from") or "")
        if ggufs:
            status.insert(0, "parsing GGUF")
        status += ["creating new layer sha256:" + model.digest, "writing manifest", "success"]
        self.fake.models[model.name] = model
        if body.get("stream", True) is False:
            self.send_json(200, {"status": "success"})
        else:
            self.stream("application/x-ndjson", (json.dumps({"status": s}).encode() + b"\n" for s in status))

    def delete(self, path: str) -> None:
        body = self._json_body()
        if body is None or (model := self._model(body)) is None:
            return
        del self.fake.models[model.name]
        self.send_empty(200)

    def version(self, path: str) -> None:
        self.record(None)
        self.send_json(200, {"version": "0.12.0"})

    # --- blobs ---------------------------------------------------------------------------------------
    def blob_head(self, path: str) -> None:
        self.record(None)
        blob = self.fake.blob_path(path.rsplit("/", 1)[1])
        self.send_empty(200 if blob is not None and blob.exists() else 404)

    def blob_post(self, path: str) -> None:
        digest = path.rsplit("/", 1)[1]
        blob = self.fake.blob_path(digest)
        if blob is None:
            self.read_body()
            self.send_json(400, {"error": f"invalid digest {digest!r}; expected sha256:<64 hex>"})
            return
        tmp = blob.with_suffix(".partial")
        sha = hashlib.sha256()
        with tmp.open("wb") as out:
            for chunk in self._body_chunks():
                sha.update(chunk)
                out.write(chunk)
        self.record({"digest": digest, "size": tmp.stat().st_size})
        if f"sha256:{sha.hexdigest()}" != digest:
            tmp.unlink()
            self.send_json(400, {"error": f"digest mismatch, expected {digest}, got sha256:{sha.hexdigest()}"})
            return
        tmp.replace(blob)
        self.send_empty(201)

    def _body_chunks(self) -> Iterator[bytes]:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        left = int(self.headers.get("content-length") or 0)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@dataclass
class OllamaFake(FakeServer):
    """Ollama fake. Pass `url` as `host` to `ollama.Client`/`AsyncClient`, or as OLLAMA_HOST."""

    models: dict[str, OllamaModel] = field(default_factory=dict)
    responder: Callable[[Call], Reply] | None = None
    blob_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fake-ollama-")))

    def blob_path(self, digest: str) -> Path | None:
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
            return None
        return self.blob_dir / f"sha256-{hexdigest}"

    def add_model(self, name: str, gguf: str | Path, **kw: Any) -> OllamaModel:
        model = OllamaModel(name=_norm(name), gguf=Path(gguf), **kw)
        self.models[model.name] = model
        return model

    def describe(self, model: OllamaModel) -> dict:
        size = model.gguf.stat().st_size if model.gguf.exists() else 0
        quant = model.gguf.name.rsplit(".", 2)[-2] if model.gguf.name.count(".") >= 2 else "unknown"
        return {"name": model.name, "model": model.name, "modified_at": model.modified_at, "size": size,
                "digest": model.digest,
                "details": {"parent_model": model.parent, "format": "gguf", "family": "llama",
                            "families": ["llama"], "parameter_size": "", "quantization_level": quant}}

    def model_info(self, model: OllamaModel) -> dict:
        try:
            from gguf import GGUFReader

            reader = GGUFReader(str(model.gguf))
            info: dict[str, Any] = {}
            for key, f in reader.fields.items():
                if key.startswith("general.") or key.endswith((".context_length", ".embedding_length",
                                                                ".block_count")):
                    if len(f.types) == 1 and f.data:
                        value = f.parts[f.data[0]]
                        info[key] = (bytes(value).decode("utf-8", "replace") if value.dtype.kind == "u"
                                     and value.itemsize == 1 else value.tolist()[0] if len(value) else None)
            return info
        except Exception as exc:  # a fake must keep answering even if gguf can't read the file
            return {"error": str(exc)}

    def stop(self) -> None:
        self.stop_listening()
        shutil.rmtree(self.blob_dir, ignore_errors=True)


def start_ollama(models: dict[str, str | Path] | None = None,
                 responder: Callable[[Call], Reply] | None = None) -> OllamaFake:
    """Start the fake with `models` ({name: gguf path}); default: `smollm2:135m` = the bundled GGUF."""
    fake = OllamaFake(responder=responder)
    for name, path in (models if models is not None else {"smollm2:135m": llm.bundled_gguf()}).items():
        fake.add_model(name, path, parameters={"stop": ["<|im_end|>"]})
    return start(_OllamaHandler, fake)
