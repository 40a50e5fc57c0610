"""Cascade (opt-in, non-streaming): let the local tier answer, check the reply against the workspace's rules,
and ask the next tier when it breaks one of the rules named in `cascade`.

The rule check is a function the caller hands the app (`engrain serve` builds it from the workspace's rules,
judge rules included with `--judge`): the router itself knows nothing of rules, so it imports nothing of
datagen. It runs in a worker thread: a judge rule is a blocking model call.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from router.config import RouterConfig
from router.engine import CallFailed, Engine, Outcome
from router.policy import Decision, ordered
from router.scoring import prompt_of

ReplyCheck = Callable[[str, str], list[str]]   # (the user's words, reply text) -> names of the rules it breaks

PASSED = "local-passed"


def broken_rule(cfg: RouterConfig, check: ReplyCheck, job: dict, completion: dict) -> str | None:
    """The first opted-in rule the reply breaks, or None."""
    message = (completion.get("choices") or [{}])[0].get("message") or {}
    broken = check(prompt_of(job["messages"])[0], message.get("content") or "")
    wanted = set(cfg.cascade)
    return next((name for name in broken if "*" in wanted or name in wanted), None)


def escalation(cfg: RouterConfig, engine: Engine) -> tuple[str, ...] | None:
    """The usable models of the tier after the weak one (cooling ones last), or None if there is none."""
    for tier in cfg.chain(cfg.weak_tier)[1:]:
        chain = [name for name in cfg.tier(tier).models if cfg.model(name) and cfg.model(name).available()]
        if chain:
            return ordered(chain, engine.cooldown_left)
    return None


def _both(local: Outcome, then: Outcome, model: str, answer: dict) -> Outcome:
    """The two calls of an escalation as one outcome (the response's fallback count covers both)."""
    return Outcome(model, local.fallbacks + then.fallbacks, local.upstream_s + then.upstream_s,
                   local.errors + then.errors, answer)


async def answer(cfg: RouterConfig, engine: Engine, check: ReplyCheck | None, decision: Decision, job: dict,
                 native: Any = None) -> tuple[Outcome, str | None]:
    """A non-streaming answer and the cascade's verdict. Cascaded when the config opts in and the weak tier was
    chosen: answer locally; on a broken rule answer again from the next tier. The verdict: `local-passed`,
    `local-failed:<rule>`, or None (not cascaded, or a fallback tier answered instead of the local one). Counts
    the verdicts and the spend saved against always-strong."""
    if not (cfg.cascade and check is not None and decision.tier == cfg.weak_tier):
        return await engine.complete(decision.chain, job, native), None
    metrics = engine.metrics
    local = await engine.complete(decision.chain, job)
    if cfg.tier_of(local.model) != cfg.weak_tier:   # the local tier failed and a fallback answered: nothing to check
        return local, None
    usage = local.answer.get("usage") or {}
    tokens = (usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
    local_cost = metrics.price(local.model, *tokens)
    rule = await asyncio.to_thread(broken_rule, cfg, check, job, local.answer)   # a judge rule calls a model
    chain = escalation(cfg, engine) if rule is not None else None
    if rule is None or chain is None:     # kept; with no next tier a failing local answer is the best there is
        metrics.cascade.labels("passed" if rule is None else "no_next_tier").inc()
        metrics.cascade_saved.inc(metrics.price(metrics.strong_model(), *tokens) - local_cost)
        return local, PASSED if rule is None else f"local-failed:{rule};no-next-tier"
    metrics.cascade.labels("escalated").inc()
    metrics.cascade_saved.dec(local_cost)  # always-strong would have paid only the strong answer
    try:
        strong = await engine.complete(chain, job)
    except CallFailed as exc:             # the next tier failed too: the local answer beats an error
        return _both(local, exc.outcome, local.model, local.answer), f"local-failed:{rule};escalation-failed"
    return _both(local, strong, strong.model, strong.answer), f"local-failed:{rule}"
