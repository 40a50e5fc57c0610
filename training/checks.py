"""Post-conversion checks: a GGUF is packaged only when llama.cpp reads it the way transformers reads the
merged model. convert_hf_to_gguf.py can exit 0 and still write a wrong vocabulary (see base.save_tokenizer),
so each conversion is checked for metadata, token-id parity on probe strings, and greedy-output parity."""
from __future__ import annotations

from pathlib import Path

from training.chat import CHAT_TEMPLATE
from training.errors import ConversionMismatch

PROBES = (
    "def load_config(path):\n    return toml.load(open(path))",
    "Step 0 — Identity Audit: naïve café, 中文, emoji 🚀, tabs\tand   spaces",
    "<|im_start|>user\nFind the parser.<|im_end|>\n<|im_start|>assistant\n",
    '<tool_call>\n{"name": "Grep", "arguments": {"pattern": "def load_config"}}\n</tool_call>',
    "  leading spaces, 12345 numbers, CamelCaseIdentifiers and snake_case_ones!",
)
PROMPTS = (
    [{"role": "user", "content": "Where do we parse the config?"}],
    [{"role": "user", "content": "Write a Python function that adds two numbers."}],
)
GREEDY_TOKENS = 16
# Logit gap under which two candidates count as a tie: f16 weights move logits by about 1e-3 relative, so a
# near-tie may flip the argmax without the conversion being wrong.
TIE_TOLERANCE = 0.05


def metadata(gguf: Path, tokenizer) -> list[str]:
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf)).fields

    def value(key: str):
        f = fields.get(key)
        if f is None or not f.data:
            return None
        part = f.parts[f.data[0]]
        return bytes(part).decode("utf-8") if part.dtype.kind == "u" and part.itemsize == 1 else part.tolist()[0]

    problems = []
    if not value("general.architecture"):
        problems.append("no general.architecture")
    if value("tokenizer.ggml.model") != "gpt2":
        problems.append(f"tokenizer.ggml.model is {value('tokenizer.ggml.model')!r}, expected 'gpt2' (byte-level BPE)")
    if not value("tokenizer.ggml.pre"):
        problems.append("no tokenizer.ggml.pre (pre-tokenizer)")
    merges = fields.get("tokenizer.ggml.merges")
    if merges is None or not merges.data:
        problems.append("no tokenizer.ggml.merges")
    if value("tokenizer.ggml.eos_token_id") != tokenizer.eos_token_id:
        problems.append(f"eos id {value('tokenizer.ggml.eos_token_id')} != HF {tokenizer.eos_token_id}")
    if value("tokenizer.chat_template") != CHAT_TEMPLATE:
        problems.append("tokenizer.chat_template is not the template used in training")
    return problems


def token_parity(gguf: Path, tokenizer) -> list[str]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    problems = []
    for probe in PROBES:
        ours = llm.tokenize(probe.encode(), add_bos=False, special=True)
        theirs = tokenizer.encode(probe, add_special_tokens=False)
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            problems.append(f"tokens differ on {probe[:30]!r} at {at}: llama.cpp {ours[at:at + 4]} vs HF "
                            f"{theirs[at:at + 4]}")
    return problems


def greedy_parity(gguf: Path, model_dir: Path, tokenizer) -> list[str]:
    """llama.cpp's greedy continuation must be HF's argmax at every step (ties within TIE_TOLERANCE)."""
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    llm = Llama(model_path=str(gguf), n_ctx=512, n_threads=2, verbose=False)
    problems = []
    for messages in PROMPTS:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
        llm.reset()
        produced = []
        for token in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            produced.append(token)
            if token == tokenizer.eos_token_id or len(produced) >= GREEDY_TOKENS:
                break
        with torch.no_grad():
            logits = model(torch.tensor([prompt + produced])).logits[0, len(prompt) - 1:-1]
        for i, token in enumerate(produced):
            gap = (logits[i].max() - logits[i, token]).item()
            if gap > TIE_TOLERANCE:
                problems.append(f"greedy output differs after {i} tokens on {messages[-1]['content'][:30]!r}: "
                                f"llama.cpp chose {token} ({tokenizer.decode([token])!r}), HF prefers "
                                f"{int(logits[i].argmax())} ({tokenizer.decode([int(logits[i].argmax())])!r}) "
                                f"by {gap:.3f} logits")
                break
    return problems


def verify(gguf: Path, model_dir: Path) -> dict[str, str]:
    """Run the checks in order; raise ConversionMismatch listing the problems, else return a summary."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Each check runs only when the one before passed: llama.cpp aborts the process on some broken vocabularies,
    # and greedy parity means nothing when the tokens already differ.
    results = {"metadata": metadata(gguf, tokenizer)}
    if not results["metadata"]:
        results["tokens"] = token_parity(gguf, tokenizer)
        if not results["tokens"]:
            results["greedy"] = greedy_parity(gguf, model_dir, tokenizer)
    problems = [f"{kind}: {p}" for kind, ps in results.items() for p in ps]
    if problems:
        raise ConversionMismatch(f"{gguf.name} does not match the merged model, not packaging it:\n  "
                                 + "\n  ".join(problems))
    return {kind: "ok" for kind in results} | {"probes": str(len(PROBES)), "greedy_prompts": str(len(PROMPTS))}
