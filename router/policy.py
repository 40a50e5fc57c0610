"""Which deployments a request goes to, and why: explicit model, capability gates, rules, then the score."""
from __future__ import annotations

import fnmatch
import re
import time
from dataclasses import dataclass, field

from router.config import ModelConfig, RouterConfig
from router.convert import text_of
from router.errors import RouterError
from router.scoring import Scorer, prompt_of


@dataclass
class Decision:
    tier: str
    chain: list[str]                     # deployments to try, in order
    score: float | None
    threshold: float
    prompt_tokens: int                   # estimated prompt size (the gate adds max_tokens to it)
    reasons: list[str] = field(default_factory=list)
    decision_ms: float = 0.0


def estimate_tokens(job: dict) -> int:
    """A deliberately generous token estimate (3 chars per token) so the gate errs toward refusing."""
    chars = sum(len(text_of(m.get("content"))) + 16 + len(str(m.get("tool_calls") or ""))
                for m in job["messages"])
    chars += len(str(job.get("tools") or ""))
    return chars // 3 + 1


def answer_room(m: ModelConfig, job: dict) -> int:
    """Tokens of answer a model must have room for beside the prompt: max_tokens, up to a quarter of its window.
    Agents ask for far more than an answer takes (Claude Code: 32k-128k on every request), and a small local
    model still answers them; providers give the model what its window leaves."""
    return min(int(job.get("max_tokens") or 0), m.context_window // 4)


def _usable(cfg: RouterConfig, name: str, job: dict, prompt: int, reasons: list[str]) -> bool:
    m = cfg.model(name)
    assert m is not None
    if not m.available():
        reasons.append(f"{name}: skipped, {m.api_key_env} is not set")
        return False
    if job.get("tools") and not m.supports_tools:
        reasons.append(f"{name}: skipped, does not support tools")
        return False
    if prompt + answer_room(m, job) > m.context_window:
        reasons.append(f"{name}: skipped, ~{prompt + answer_room(m, job)} tokens needed > context window "
                       f"{m.context_window}")
        return False
    return True


def too_long(prompt: int, max_tokens: int, window: int) -> RouterError:
    """Anthropic's own wording for a request over the context window: clients such as Claude Code recognise
    it (and compact the conversation, or lower max_tokens) instead of retrying. The router never truncates."""
    if prompt > window:
        return RouterError(400, f"prompt is too long: {prompt} tokens > {window} maximum", "context_length_exceeded")
    return RouterError(400, f"input length and `max_tokens` exceed context limit: {prompt} + {max_tokens} > "
                            f"{window}, decrease input length or `max_tokens` and try again", "context_length_exceeded")


def _refuse(cfg: RouterConfig, job: dict, prompt: int, candidates: list[str]) -> RouterError:
    models = [m for m in (cfg.model(n) for n in candidates) if m]
    if all(prompt + answer_room(m, job) > m.context_window for m in models):
        largest = max(models, key=lambda m: m.context_window)
        return too_long(prompt, answer_room(largest, job), largest.context_window)
    if job.get("tools") and not any(m.supports_tools for m in models if m and m.available()):
        return RouterError(400, "tools were requested but no available model supports tools", "tools_unsupported")
    missing = sorted({m.api_key_env for m in models if m and not m.available() and m.api_key_env})
    return RouterError(503, f"no model is available for this request (set {', '.join(missing)})"
                       if missing else "no model is available for this request", "no_model_available")


def decide(cfg: RouterConfig, scorer: Scorer | None, job: dict, requested: str) -> Decision:
    start = time.perf_counter()
    prompt = estimate_tokens(job)
    threshold = cfg.threshold if cfg.threshold is not None else (scorer.head.threshold if scorer else 0.5)
    reasons: list[str] = []

    target = cfg.resolve(requested)
    if target is None:
        raise RouterError(404, f"model {requested!r} not found; use one of {cfg.names()}", "model_not_found")
    if target != requested:
        reasons.append(f"model {requested!r} -> {target!r}")
    if target not in cfg.aliases:
        if cfg.model(target) is not None:
            m = cfg.model(target)
            if job.get("tools") and not m.supports_tools:
                raise RouterError(400, f"model {target!r} does not support tools", "tools_unsupported")
            if prompt + answer_room(m, job) > m.context_window:
                raise too_long(prompt, answer_room(m, job), m.context_window)
            if not m.available():
                raise RouterError(503, f"model {target!r} is unavailable: set {m.api_key_env}",
                                  "no_model_available")
            return Decision(cfg.tier_of(target), [target], None, threshold, prompt,
                            reasons + [f"explicit model {target!r}"], (time.perf_counter() - start) * 1000)
        tier, score = target, None
        reasons.append(f"explicit tier {target!r}")
    else:
        text, _ = prompt_of(job["messages"])
        score = scorer.score(job["messages"], tools=len(job.get("tools") or [])) if scorer else 0.0
        tier = ""
        for i, rule in enumerate(cfg.rules):
            if ((rule.pattern is None or re.search(rule.pattern, text)) and
                    (rule.min_score is None or score >= rule.min_score) and
                    (rule.max_score is None or score < rule.max_score) and
                    (rule.has_tools is None or bool(job.get("tools")) == rule.has_tools) and
                    (rule.model is None or fnmatch.fnmatchcase(requested, rule.model)) and
                    (rule.max_prompt_tokens is None or prompt <= rule.max_prompt_tokens)):
                tier = rule.tier
                reasons.append(f"rule {i + 1} -> {tier}")
                break
        if not tier:
            tier = cfg.strong_tier if score >= threshold else cfg.weak_tier
            reasons.append(f"score {score:.3f} {'>=' if score >= threshold else '<'} threshold {threshold:.3f} "
                           f"-> {tier}")

    candidates = [name for t in cfg.chain(tier) for name in cfg.tier(t).models]
    chain = [name for name in dict.fromkeys(candidates) if _usable(cfg, name, job, prompt, reasons)]
    if not chain:
        raise _refuse(cfg, job, prompt, list(dict.fromkeys(candidates)))
    chosen_tier = cfg.tier_of(chain[0])
    if chosen_tier != tier:
        reasons.append(f"tier {tier!r} has no usable model -> {chosen_tier!r}")
    return Decision(chosen_tier, chain, score, threshold, prompt, reasons, (time.perf_counter() - start) * 1000)
