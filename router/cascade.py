"""Cascade (opt-in, non-streaming): let the local tier answer, check the reply against the workspace's rules,
and ask the next tier when it breaks one of the rules named in `cascade`.

The rule check is a function the caller hands the app (`engrain serve` builds it from the workspace's rules):
the router itself knows nothing of rules, so it imports nothing of datagen.
"""
from __future__ import annotations

from typing import Callable

from router.config import RouterConfig
from router.engine import Attempted, Engine
from router.errors import RouterError
from router.policy import Decision

ReplyCheck = Callable[[dict, str], list[str]]   # (job, reply text) -> names of the rules the reply breaks

PASSED = "local-passed"


def applies(cfg: RouterConfig, check: ReplyCheck | None, decision: Decision) -> bool:
    return bool(cfg.cascade) and check is not None and decision.tier == cfg.weak_tier


def broken_rule(cfg: RouterConfig, check: ReplyCheck, job: dict, completion: dict) -> str | None:
    """The first opted-in rule the reply breaks, or None."""
    message = (completion.get("choices") or [{}])[0].get("message") or {}
    broken = check(job, message.get("content") or "")
    wanted = set(cfg.cascade)
    return next((name for name in broken if "*" in wanted or name in wanted), None)


def escalation(cfg: RouterConfig, engine: Engine) -> tuple[str, list[str]] | None:
    """The tier after the weak one and its usable models (cooling ones last), or None if there is none."""
    for tier in cfg.chain(cfg.weak_tier)[1:]:
        chain = [name for name in cfg.tier(tier).models if cfg.model(name) and cfg.model(name).available()]
        if chain:
            return tier, engine.order(chain)
    return None


async def complete(cfg: RouterConfig, engine: Engine, check: ReplyCheck, decision: Decision, job: dict,
                   att: Attempted) -> tuple[dict, str | None]:
    """Answer locally; on a broken rule answer again from the next tier. Returns the completion and the outcome
    (`local-passed`, `local-failed:<rule>`, or None when a fallback tier answered). Counts the outcome and the spend saved against always-strong."""
    metrics = engine.metrics
    local = await engine.complete(decision, job, att)
    if cfg.tier_of(att.model) != cfg.weak_tier:     # the local tier failed and a fallback answered: nothing to check
        return local, None
    usage = local.get("usage") or {}
    tokens = (usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
    local_cost = metrics.price(att.model, *tokens)
    rule = broken_rule(cfg, check, job, local)
    nxt = escalation(cfg, engine) if rule is not None else None
    if rule is None or nxt is None:       # kept; with no next tier a failing local answer is the best there is
        metrics.cascade.labels("passed" if rule is None else "no_next_tier").inc()
        metrics.cascade_saved.inc(metrics.price(metrics.strong_model(), *tokens) - local_cost)
        return local, PASSED if rule is None else f"local-failed:{rule};no-next-tier"
    metrics.cascade.labels("escalated").inc()
    metrics.cascade_saved.dec(local_cost)  # always-strong would have paid only the strong answer
    local_model, local_tier, local_chain = att.model, decision.tier, decision.chain
    decision.tier, decision.chain = nxt
    decision.reasons.append(f"cascade: {local_model}'s reply broke rule {rule!r} -> {decision.tier}")
    try:
        return await engine.complete(decision, job, att), f"local-failed:{rule}"
    except RouterError:                   # the next tier failed too: the local answer beats an error
        att.model, decision.tier, decision.chain = local_model, local_tier, local_chain
        return local, f"local-failed:{rule};escalation-failed"
