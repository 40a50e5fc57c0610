"""Which deployments a request goes to, and why: explicit model, capability gates, rules, then the score."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from router.config import RouterConfig
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


def _usable(cfg: RouterConfig, name: str, job: dict, needed: int, reasons: list[str]) -> bool:
    m = cfg.model(name)
    assert m is not None
    if not m.available():
        reasons.append(f"{name}: skipped, {m.api_key_env} is not set")
        return False
    if job.get("tools") and not m.supports_tools:
        reasons.append(f"{name}: skipped, does not support tools")
        return False
    if needed > m.context_window:
        reasons.append(f"{name}: skipped, ~{needed} tokens needed > context window {m.context_window}")
        return False
    return True


def _refuse(cfg: RouterConfig, job: dict, needed: int, candidates: list[str]) -> RouterError:
    models = [cfg.model(n) for n in candidates]
    if all(needed > m.context_window for m in models if m):
        return RouterError(400, f"prompt needs ~{needed} tokens (prompt + max_tokens), more than every eligible "
                                f"model's context window (largest {max(m.context_window for m in models if m)}); "
                                "shorten it — the router never truncates", "context_length_exceeded")
    if job.get("tools") and not any(m.supports_tools for m in models if m and m.available()):
        return RouterError(400, "tools were requested but no available model supports tools", "tools_unsupported")
    missing = sorted({m.api_key_env for m in models if m and not m.available() and m.api_key_env})
    return RouterError(503, f"no model is available for this request (set {', '.join(missing)})"
                       if missing else "no model is available for this request", "no_model_available")


def decide(cfg: RouterConfig, scorer: Scorer | None, job: dict, requested: str) -> Decision:
    start = time.perf_counter()
    prompt = estimate_tokens(job)
    needed = prompt + int(job.get("max_tokens") or 0)
    threshold = cfg.threshold if cfg.threshold is not None else (scorer.head.threshold if scorer else 0.5)
    reasons: list[str] = []

    if requested not in cfg.aliases:
        tier_names = [t.name for t in cfg.tiers]
        if cfg.model(requested) is not None:
            m = cfg.model(requested)
            if job.get("tools") and not m.supports_tools:
                raise RouterError(400, f"model {requested!r} does not support tools", "tools_unsupported")
            if needed > m.context_window:
                raise RouterError(400, f"prompt needs ~{needed} tokens (prompt + max_tokens), more than "
                                       f"{requested!r}'s context window {m.context_window}; the router never "
                                       "truncates", "context_length_exceeded")
            if not m.available():
                raise RouterError(503, f"model {requested!r} is unavailable: set {m.api_key_env}",
                                  "no_model_available")
            return Decision(cfg.tier_of(requested), [requested], None, threshold, prompt,
                            [f"explicit model {requested!r}"], (time.perf_counter() - start) * 1000)
        if requested not in tier_names:
            known = [m.name for m in cfg.models] + tier_names + cfg.aliases
            raise RouterError(404, f"model {requested!r} not found; use one of {known}", "model_not_found")
        tier, score = requested, None
        reasons.append(f"explicit tier {requested!r}")
    else:
        text, _ = prompt_of(job["messages"])
        score = scorer.score(job["messages"], tools=len(job.get("tools") or [])) if scorer else 0.0
        tier = ""
        for i, rule in enumerate(cfg.rules):
            if ((rule.pattern is None or re.search(rule.pattern, text)) and
                    (rule.min_score is None or score >= rule.min_score) and
                    (rule.max_score is None or score < rule.max_score) and
                    (rule.has_tools is None or bool(job.get("tools")) == rule.has_tools)):
                tier = rule.tier
                reasons.append(f"rule {i + 1} -> {tier}")
                break
        if not tier:
            tier = cfg.strong_tier if score >= threshold else cfg.weak_tier
            reasons.append(f"score {score:.3f} {'>=' if score >= threshold else '<'} threshold {threshold:.3f} "
                           f"-> {tier}")

    candidates = [name for t in cfg.chain(tier) for name in cfg.tier(t).models]
    chain = [name for name in dict.fromkeys(candidates) if _usable(cfg, name, job, needed, reasons)]
    if not chain:
        raise _refuse(cfg, job, needed, list(dict.fromkeys(candidates)))
    chosen_tier = cfg.tier_of(chain[0])
    if chosen_tier != tier:
        reasons.append(f"tier {tier!r} has no usable model -> {chosen_tier!r}")
    return Decision(chosen_tier, chain, score, threshold, prompt, reasons, (time.perf_counter() - start) * 1000)
