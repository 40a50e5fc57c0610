"""Training throughput: our hf backend vs a plain TRL SFTTrainer script vs Unsloth, same model, data, steps.

    .venv/bin/python bench/training.py [--steps 10] [--batch-size 2] [--max-seq-len 512] [--model tiny|smollm2]

Each contender runs in its own subprocess (so peak memory is its own), on the bundled quickstart examples
rendered with the same chat template, LoRA r=16 on all linear layers, and prints tokens/s (non-pad tokens
through the model per second of training) and peak RSS. The anchor is Unsloth (facts.md: ~122 tok/s for
SmolLM2-135M here, TRL ~5-10, a plain PEFT loop ~77).

TRL: the .venv holds trl 1.15 (Unsloth pins trl<=1.15) and TRL 1.15 crashes on CPU, so the TRL contender
runs with trl 1.16 installed without dependencies into a throwaway folder under /tmp, put first on its path.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder would come first on sys.path and `import training` would import this
# file instead of the package.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
TRL_VERSION = "1.16.0"
TRL_DIR = Path(tempfile.gettempdir()) / f"engrain-bench-trl-{TRL_VERSION}"
CONTENDERS = ("hf", "trl", "unsloth")


def _model(kind: str, cache: Path) -> Path:
    if kind == "smollm2":
        from training.base import resolve

        return resolve("smollm2", cache)
    from tests.training.conftest import build_tiny_llama

    folder = cache / "tiny-llama-v2"
    return folder if (folder / "config.json").is_file() else build_tiny_llama(folder)


def _data(out: Path) -> Path:
    rows = []
    for path in sorted((REPO / "engrain" / "quickstart" / "workspace" / "examples").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text("".join(json.dumps({"messages": r["messages"], **(
        {"tools": r["tools"]} if r.get("tools") else {})}) + "\n" for r in rows))
    return out


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- contenders (each runs in a subprocess: `bench/training.py --worker NAME ...`) ----------------------------
def worker_hf(model: Path, data: Path, args) -> dict:
    from training.backends.hf import train_stage
    from training.backends.job import StageJob
    from training.base import prepare
    from training.config import TrainingConfig

    work = Path(tempfile.mkdtemp(prefix="bench-hf-"))
    cfg = TrainingConfig(lora_r=16, lora_alpha=32, max_seq_len=args.max_seq_len, save_every=10_000)
    job = StageJob(name="bench", base=str(prepare(model, work / "base")), data_dir=data, out_dir=work, config=cfg,
                   learning_rate=2e-4, max_steps=args.steps, epochs=1, batch_size=args.batch_size, grad_accum=1)
    out = train_stage(job)
    return {"tokens_per_s": out.tokens_per_s, "final_loss": out.losses[-1]}


def _sft_dataset(data: Path, tokenizer):
    from datasets import Dataset

    from training.chat import CHAT_TEMPLATE, normalize

    rows = [normalize(json.loads(line)) for line in (data / "train.jsonl").read_text().splitlines()]
    tokenizer.chat_template = CHAT_TEMPLATE
    return Dataset.from_list([{"text": tokenizer.apply_chat_template(r["messages"], tools=r["tools"], tokenize=False)}
                              for r in rows])


class _TokenClock:
    """Counts non-pad tokens and times optimizer steps from the first step on (model loading excluded)."""

    def __init__(self):
        self.tokens, self.start, self.end = 0, None, None


def _trainer_run(trainer, clock) -> dict:
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if clock.start is None:
                clock.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            clock.end = time.perf_counter()

    trainer.add_callback(Clock())
    original = trainer.training_step

    def counting_step(model, inputs, *a, **kw):
        mask = inputs.get("attention_mask")
        clock.tokens += int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
        return original(model, inputs, *a, **kw)

    trainer.training_step = counting_step
    result = trainer.train()
    return {"tokens_per_s": clock.tokens / (clock.end - clock.start), "final_loss": result.training_loss}


def worker_trl(model: Path, data: Path, args) -> dict:
    """What the TRL docs show: SFTTrainer + SFTConfig defaults + a LoraConfig (plus use_cpu=True, which TRL's
    own error message asks for on a machine without a GPU; its bf16=True default stays)."""
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    config = SFTConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), max_steps=args.steps,
                       per_device_train_batch_size=args.batch_size, max_length=args.max_seq_len,
                       logging_steps=1, save_strategy="no", report_to=[], use_cpu=True)
    trainer = SFTTrainer(model=str(model), args=config, train_dataset=_sft_dataset(data, tokenizer),
                         processing_class=tokenizer,
                         peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    return _trainer_run(trainer, _TokenClock())


def worker_unsloth(model: Path, data: Path, args) -> dict:
    """Unsloth's documented recipe: FastLanguageModel + get_peft_model + TRL's SFTTrainer."""
    from unsloth import FastLanguageModel
    from trl import SFTConfig, SFTTrainer

    lm, tokenizer = FastLanguageModel.from_pretrained(model_name=str(model), max_seq_length=args.max_seq_len,
                                                      load_in_4bit=False, local_files_only=True)
    lm = FastLanguageModel.get_peft_model(lm, r=16, lora_alpha=32, lora_dropout=0, bias="none",
                                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                          "up_proj", "down_proj"], use_gradient_checkpointing="unsloth")
    config = SFTConfig(output_dir=tempfile.mkdtemp(prefix="bench-unsloth-"), max_steps=args.steps,
                       per_device_train_batch_size=args.batch_size, max_length=args.max_seq_len, logging_steps=1,
                       save_strategy="no", report_to=[], dataset_text_field="text")
    trainer = SFTTrainer(model=lm, processing_class=tokenizer, train_dataset=_sft_dataset(data, tokenizer),
                         args=config)
    return _trainer_run(trainer, _TokenClock())


# --- driver ---------------------------------------------------------------------------------------------------
def _ensure_trl() -> Path:
    if not (TRL_DIR / "trl").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(TRL_DIR),
                        f"trl=={TRL_VERSION}"], check=True)
    return TRL_DIR


def _spawn(name: str, model: Path, data: Path, args) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(_ensure_trl()) if name == "trl" else "", str(REPO)]))}
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--worker", name, "--model-dir", str(model), "--data-dir", str(data),
               "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-seq-len",
               str(args.max_seq_len), "--out", out.name]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode:
            return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1][:120]}
        return json.loads(Path(out.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--only", nargs="*", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = globals()[f"worker_{args.worker}"](args.model_dir, args.data_dir, args)
        args.out.write_text(json.dumps({**result, "peak_mib": _peak_mib()}))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = REPO / ".engrain" / "bench-cache"
    model, data = _model(args.model, cache), _data(cache / "data")
    print(f"model={args.model} steps={args.steps} batch={args.batch_size} max_seq_len={args.max_seq_len} "
          f"cpus={len(os.sched_getaffinity(0))} load={os.getloadavg()[0]:.1f}", flush=True)
    results = {name: _spawn(name, model, data, args) for name in args.only}
    anchor = results.get("unsloth", {}).get("tokens_per_s")
    print(f"{'contender':<10} {'tokens/s':>9} {'vs unsloth':>10} {'peak MiB':>9} {'final loss':>10}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<10} failed: {r['error']}")
            continue
        ratio = f"{r['tokens_per_s'] / anchor:.2f}x" if anchor else "-"
        print(f"{name:<10} {r['tokens_per_s']:>9.1f} {ratio:>10} {r['peak_mib']:>9.0f} {r['final_loss']:>10.4f}")


if __name__ == "__main__":
    main()
