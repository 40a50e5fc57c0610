"""Which deployments a request goes to, and why: explicit model, capability gates, rules, then the score."""
from __future__ import annotations

import fnmatch
import re
import time
from dataclasses import dataclass
from typing import Callable

from router.config import ModelConfig, RouterConfig
from router.convert import text_of
from router.errors import RouterError
from router.head import Head
from router.scoring import Scorer, prompt_of


@dataclass(frozen=True)
class Decision:
    tier: str
    chain: tuple[str, ...]               # deployments to try, in order (cooling ones last)
    score: float | None
    threshold: float
    prompt_tokens: int                   # estimated prompt size (the gate adds max_tokens to it)
    reasons: tuple[str, ...] = ()
    decision_ms: float = 0.0


def threshold_of(cfg: RouterConfig, head: Head | None) -> float:
    """The score at which the strong tier takes over: the config's when set, else the head's calibrated one."""
    return cfg.threshold if cfg.threshold is not None else head.threshold if head else 0.5


def tier_by_score(cfg: RouterConfig, score: float, threshold: float) -> str:
    return cfg.strong_tier if score >= threshold else cfg.weak_tier


def ordered(chain: list[str], cooldown_left: Callable[[str], float]) -> tuple[str, ...]:
    """Cooling deployments go last: tried only when everything else failed."""
    return tuple(sorted(chain, key=lambda n: cooldown_left(n) > 0))


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


def _unusable(m: ModelConfig, job: dict, prompt: int) -> tuple[str, RouterError] | None:
    """Why `m` cannot take this request, as a reason for the trace and as the error a client that named `m` gets;
    None when it can. A named model and a tier's chain go through these same checks."""
    need = prompt + answer_room(m, job)
    if job.get("tools") and not m.supports_tools:
        return "does not support tools", RouterError(400, f"model {m.name!r} does not support tools",
                                                     "tools_unsupported")
    if need > m.context_window:
        return (f"~{need} tokens needed > context window {m.context_window}",
                too_long(prompt, answer_room(m, job), m.context_window))
    if not m.available():
        return f"{m.api_key_env} is not set", RouterError(503, f"model {m.name!r} is unavailable: set "
                                                               f"{m.api_key_env}", "no_model_available")
    return None


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


def _tier_of_request(cfg: RouterConfig, scorer: Scorer | None, job: dict, requested: str, prompt: int,
                     threshold: float, reasons: list[str]) -> tuple[str, float]:
    """The tier an aliased request goes to: the first rule that matches, else the score against the threshold."""
    text, _ = prompt_of(job["messages"])
    score = scorer.score(job["messages"], tools=len(job.get("tools") or [])) if scorer else 0.0
    for i, rule in enumerate(cfg.rules):
        if ((rule.pattern is None or re.search(rule.pattern, text)) and
                (rule.min_score is None or score >= rule.min_score) and
                (rule.max_score is None or score < rule.max_score) and
                (rule.has_tools is None or bool(job.get("tools")) == rule.has_tools) and
                (rule.model is None or fnmatch.fnmatchcase(requested, rule.model)) and
                (rule.max_prompt_tokens is None or prompt <= rule.max_prompt_tokens)):
            reasons.append(f"rule {i + 1} -> {rule.tier}")
            return rule.tier, score
    tier = tier_by_score(cfg, score, threshold)
    reasons.append(f"score {score:.3f} {'>=' if score >= threshold else '<'} threshold {threshold:.3f} -> {tier}")
    return tier, score


def decide(cfg: RouterConfig, scorer: Scorer | None, job: dict, requested: str,
           cooldown_left: Callable[[str], float] = lambda name: 0.0) -> Decision:
    """Where a request goes: a named model, a named tier, or (for an alias) the tier the rules or the score pick;
    then every deployment of that tier and its fallbacks that can take the request, cooling ones last."""
    start = time.perf_counter()
    prompt = estimate_tokens(job)
    threshold = threshold_of(cfg, scorer.head if scorer else None)
    reasons: list[str] = []
    target = cfg.resolve(requested)
    if target is None:
        raise RouterError(404, f"model {requested!r} not found; use one of {cfg.names()}", "model_not_found")
    if target != requested:
        reasons.append(f"model {requested!r} -> {target!r}")
    score = None
    explicit = target not in cfg.aliases and cfg.model(target) is not None
    if explicit:
        tier, candidates = cfg.tier_of(target), [target]
        reasons.append(f"explicit model {target!r}")
    else:
        if target in cfg.aliases:
            tier, score = _tier_of_request(cfg, scorer, job, requested, prompt, threshold, reasons)
        else:
            tier = target
            reasons.append(f"explicit tier {target!r}")
        candidates = list(dict.fromkeys(name for t in cfg.chain(tier) for name in cfg.tier(t).models))
    problems = {name: _unusable(cfg.model(name), job, prompt) for name in candidates}
    reasons += [f"{name}: skipped, {problem[0]}" for name, problem in problems.items() if problem]
    usable = [name for name, problem in problems.items() if problem is None]
    if not usable:    # a client that named a model hears what is wrong with it
        raise problems[target][1] if explicit else _refuse(cfg, job, prompt, candidates)
    chosen_tier = cfg.tier_of(usable[0])
    if chosen_tier != tier:
        reasons.append(f"tier {tier!r} has no usable model -> {chosen_tier!r}")
    return Decision(chosen_tier, ordered(usable, cooldown_left), score, threshold, prompt, tuple(reasons),
                    (time.perf_counter() - start) * 1000)
