"""The routing policy on typed inputs, without HTTP: thresholds, rules, tiers, a named model and the usability
checks both paths share (tools, context window, keys), cooldown order. Table of requests -> expected decision."""
from __future__ import annotations

import dataclasses

import pytest

from router.config import RouterConfig
from router.errors import RouterError
from router.head import Head
from router.policy import decide, threshold_of

TOOLS = [{"type": "function", "function": {"name": "Grep", "parameters": {"type": "object"}}}]
LONG = "word " * 4000                     # ~6700 estimated tokens: over small's window, inside big's


class FixedScorer:
    """A scorer that gives every prompt the same score (the policy, not the head, is under test here)."""

    def __init__(self, score: float, threshold: float = 0.5) -> None:
        self.value = score
        self.head = Head(embedding_model=None, features=[], mean=[], std=[], weights=[], bias=0.0,
                         threshold=threshold)

    def score(self, messages: list[dict], tools: int = 0) -> float:
        return self.value


def _config(**extra) -> RouterConfig:
    return RouterConfig.model_validate({
        "models": [{"name": "small", "provider": "openai", "model": "s", "context_window": 4096,
                    "supports_tools": False},
                   {"name": "big", "provider": "openai", "model": "b", "context_window": 100000},
                   {"name": "keyed", "provider": "openai", "model": "k", "api_key_env": "ENGRAIN_TEST_NEVER_SET"},
                   {"name": "spare", "provider": "openai", "model": "x", "context_window": 100000}],
        "tiers": [{"name": "local", "models": ["small"]}, {"name": "hosted", "models": ["big", "keyed", "spare"]}],
        "rules": [{"tier": "hosted", "pattern": "(?i)migration plan"}], **extra})


def _job(text: str = "What is a tuple?", **extra) -> dict:
    return {"messages": [{"role": "user", "content": text}], **extra}


# (requested model, job, score, config overrides) -> (tier, chain, a reason the decision gives)
ROUTED = [
    ("auto", _job(), 0.2, {}, ("local", ("small", "big", "spare"), "score 0.200 < threshold 0.500 -> local")),
    ("auto", _job(), 0.7, {}, ("hosted", ("big", "spare", "small"), "score 0.700 >= threshold 0.500 -> hosted")),
    ("auto", _job(), 0.7, {"threshold": 0.8}, ("local", ("small", "big", "spare"), "< threshold 0.800")),
    ("auto", _job("Write the migration plan"), 0.0, {}, ("hosted", ("big", "spare", "small"), "rule 1 -> hosted")),
    ("auto", _job(tools=TOOLS), 0.2, {}, ("hosted", ("big", "spare"), "small: skipped, does not support tools")),
    ("auto", _job(LONG), 0.2, {}, ("hosted", ("big", "spare"), "small: skipped, ~")),
    ("auto", _job(), 0.7, {}, ("hosted", ("big", "spare", "small"), "keyed: skipped, ENGRAIN_TEST_NEVER_SET")),
    ("hosted", _job(), 0.0, {}, ("hosted", ("big", "spare", "small"), "explicit tier 'hosted'")),
    ("small", _job(), 0.9, {}, ("local", ("small",), "explicit model 'small'")),
    ("claude-sonnet-4-5", _job(), 0.7, {}, ("hosted", ("big", "spare", "small"), "'claude-sonnet-4-5' -> 'auto'")),
    ("gpt-x", _job(), 0.7, {"model_aliases": {"gpt-*": "big"}}, ("hosted", ("big",), "explicit model 'big'")),
]


@pytest.mark.parametrize("requested,job,score,extra,expected", ROUTED)
def test_decide_routes_each_request(requested, job, score, extra, expected):
    d = decide(_config(**extra), FixedScorer(score), job, requested)
    tier, chain, reason = expected
    assert (d.tier, d.chain) == (tier, chain), d.reasons
    assert any(reason in r for r in d.reasons), d.reasons
    assert d.score == (None if requested in ("hosted", "small", "gpt-x") else score)   # named: not scored


# (requested model, job) -> (status, code): a named model gets the same checks as a tier's chain, and says why
REFUSED = [
    ("small", _job(tools=TOOLS), 400, "tools_unsupported"),
    ("small", _job(LONG), 400, "context_length_exceeded"),
    ("keyed", _job(), 503, "no_model_available"),
    ("auto", _job("word " * 80000), 400, "context_length_exceeded"),
    ("gpt-9", _job(), 404, "model_not_found"),
]


@pytest.mark.parametrize("requested,job,status,code", REFUSED)
def test_decide_refuses_what_no_usable_model_can_take(requested, job, status, code):
    with pytest.raises(RouterError) as caught:
        decide(_config(), FixedScorer(0.2), job, requested)
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.message
    if requested in ("small", "keyed"):
        assert repr(requested) in caught.value.message or "prompt" in caught.value.message


# (cooling deployments, requested) -> chain: cooling ones go last, on the scored path and for a named tier alike
COOLING = [
    ({"small"}, "auto", ("big", "spare", "small")),
    ({"big"}, "hosted", ("spare", "small", "big")),
    ({"big", "spare"}, "hosted", ("small", "big", "spare")),
    ({"small"}, "small", ("small",)),                  # a named model is still tried: it is the only one
]


@pytest.mark.parametrize("cooling,requested,chain", COOLING)
def test_cooling_deployments_are_tried_last(cooling, requested, chain):
    d = decide(_config(), FixedScorer(0.2), _job(), requested, lambda name: 30.0 if name in cooling else 0.0)
    assert d.chain == chain


# (config threshold, head threshold, scorer present) -> the threshold used
THRESHOLDS = [(None, 0.62, True, 0.62), (0.3, 0.62, True, 0.3), (None, 0.62, False, 0.5), (0.0, 0.62, True, 0.0)]


@pytest.mark.parametrize("configured,calibrated,scored,used", THRESHOLDS)
def test_the_config_threshold_wins_over_the_heads(configured, calibrated, scored, used):
    cfg = _config(threshold=configured)
    scorer = FixedScorer(0.4, threshold=calibrated) if scored else None
    assert threshold_of(cfg, scorer.head if scorer else None) == used
    assert decide(cfg, scorer, _job(), "auto").threshold == used


def test_a_decision_is_final():
    d = decide(_config(), FixedScorer(0.2), _job(), "auto")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.tier = "hosted"
    assert isinstance(d.chain, tuple) and isinstance(d.reasons, tuple)
