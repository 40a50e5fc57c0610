"""llama.cpp's own converters (HF -> GGUF, PEFT LoRA -> GGUF) and quantization through llama-cpp-python.

The converters are not in any wheel; the llama-cpp-python sdist vendors llama.cpp with them and a matching
gguf-py. They are fetched once with pip into a per-user cache (same version as the installed
llama-cpp-python, so the files it writes are ones it reads) and run as scripts, the way llama.cpp ships them.
Unsloth's `save_pretrained_gguf` is not used: it clones llama.cpp from GitHub and apt-installs as root.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from training.errors import ConversionFailed, ConverterMissing, TrainingConfigError

DEFAULT_VERSION = "0.3.36"
_MEMBERS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/")
QUANTS = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
          "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


def _version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return DEFAULT_VERSION


def converter_dir() -> Path:
    """A folder holding convert_hf_to_gguf.py, convert_lora_to_gguf.py, conversion/ and gguf-py/.

    $ENGRAIN_LLAMA_CPP may name a llama.cpp checkout; otherwise the sdist is fetched into the cache once.
    """
    if os.environ.get("ENGRAIN_LLAMA_CPP"):
        folder = Path(os.environ["ENGRAIN_LLAMA_CPP"]).expanduser()
        missing = [m for m in _MEMBERS if not (folder / m).exists()]
        if missing:
            raise ConverterMissing(f"ENGRAIN_LLAMA_CPP={folder} lacks {', '.join(missing)}; point it at a llama.cpp "
                                   "checkout (the repository root)")
        return folder
    version = _version()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "engrain" / f"llama.cpp-{version}"
    if all((cache / m).exists() for m in _MEMBERS):
        return cache
    with tempfile.TemporaryDirectory(prefix="engrain-sdist-") as tmp:
        spec = f"llama-cpp-python=={version}"
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               spec, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if not sdists:
            raise ConverterMissing(
                f"llama.cpp's GGUF converters are not cached in {cache} and could not be fetched: "
                f"`{' '.join(cmd[1:])}` failed ({(proc.stderr or proc.stdout).strip().splitlines()[-1:]}). "
                f"On a machine with PyPI access run `pip download --no-binary :all: --no-deps {spec}`, copy the "
                f"tarball here and extract vendor/llama.cpp/{{{','.join(_MEMBERS)}}} into {cache}, or set "
                "ENGRAIN_LLAMA_CPP to a llama.cpp checkout")
        _extract(sdists[0], cache)
    return cache


def _extract(sdist: Path, cache: Path) -> None:
    staging = cache.with_name(cache.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        root = tar.getnames()[0].split("/")[0] + "/vendor/llama.cpp/"
        wanted = [m for m in tar.getmembers() if m.name.startswith(root)
                  and m.name[len(root):].startswith(_MEMBERS) and (m.isfile() or m.isdir())]
        for member in wanted:
            member.name = member.name[len(root):]
        tar.extractall(staging, members=wanted, filter="data")
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(staging, cache)


def _script(args: list[str], log: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("NO_LOCAL_GGUF", None)  # use the gguf-py that ships with these converters
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        raise ConversionFailed(f"{Path(args[0]).name} failed (exit {proc.returncode}); see {log}:\n{tail}")


def hf_to_gguf(model_dir: Path, out: Path) -> Path:
    conv = converter_dir()
    _script([str(conv / "convert_hf_to_gguf.py"), str(model_dir), "--outfile", str(out), "--outtype", "f16"],
            out.with_suffix(".log"))
    return out


def lora_to_gguf(adapter_dir: Path, base_dir: Path, out: Path) -> Path:
    conv = converter_dir()
    _script([str(conv / "convert_lora_to_gguf.py"), str(adapter_dir), "--base", str(base_dir), "--outfile",
             str(out), "--outtype", "f16"], out.with_suffix(".log"))
    return out


def quantize(src: Path, dst: Path, quant: str) -> Path:
    import ctypes

    import llama_cpp

    if quant not in QUANTS:
        raise TrainingConfigError(f"unknown quantization {quant!r}; choose one of {', '.join(QUANTS)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTS[quant])
    params.nthread = max(1, len(os.sched_getaffinity(0)))
    log = dst.with_suffix(".log")
    with output_to(log):
        failed = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) != 0
    if failed:
        raise ConversionFailed(f"llama.cpp could not quantize {src} to {quant}; its messages are in {log}")
    return dst


@contextmanager
def output_to(log: Path) -> Iterator[None]:
    """llama.cpp's C code prints a line per tensor (hundreds) straight to file descriptors 1 and 2: send them to
    `log` for the duration, so a user sees engrain's summary and the details stay on disk."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def k_quant_fallback(config: dict, quant: str) -> str | None:
    """k-quants work on 256-wide blocks; llama.cpp falls back to bigger types for rows that are not."""
    dims = {k: config.get(k) for k in ("hidden_size", "intermediate_size")}
    odd = {k: v for k, v in dims.items() if isinstance(v, int) and v % 256}
    if "_k" in quant and odd:
        return (f"{quant}: {', '.join(f'{k}={v}' for k, v in odd.items())} not a multiple of 256, so llama.cpp "
                "stores many tensors in a larger fallback type; the file is bigger than the name suggests")
    return None
