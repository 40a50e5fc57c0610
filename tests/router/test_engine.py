"""The fallback engine without the HTTP app: it calls real providers (the OpenAI-compatible one, against the
loopback fake) along a chain and returns an Outcome saying who answered, how many moves it took and what failed.
Table of faults on the first deployment -> expected outcome."""
from __future__ import annotations

import asyncio

import pytest

from router.config import RouterConfig
from router.engine import CallFailed, Engine
from router.metrics import Metrics
from router.policy import decide
from tests.fakes import closed_port_url, hosted_server

JOB = {"messages": [{"role": "user", "content": "What is a tuple?"}], "max_tokens": 16}


def _engine(primary: str, secondary: str, primary_queue: int | None = None) -> Engine:
    cfg = RouterConfig.model_validate({
        "models": [{"name": "primary", "provider": "openai", "model": "p", "api_base": primary + "/v1", "api_key": "k",
                    "max_queue": primary_queue},
                   {"name": "secondary", "provider": "openai", "model": "s", "api_base": secondary + "/v1",
                    "api_key": "k"}],
        "tiers": [{"name": "local", "models": ["primary"]}, {"name": "hosted", "models": ["secondary"]}],
        "retries": 1, "backoff_s": 0.01, "timeout_s": 2.0, "cooldown_s": 60})
    return Engine(cfg, Metrics(cfg))


@pytest.fixture
def pair():
    with hosted_server() as a, hosted_server() as b:
        yield a, b


# fault on primary -> (who answers, fallbacks, primary's failed attempts, primary cooled down)
FAULTS = [
    (None, ("primary", 0, 0, False)),
    ({"kind": "status", "status": 500, "times": None}, ("secondary", 1, 2, True)),     # retried once, then moved on
    ({"kind": "status", "status": 429, "times": 1}, ("primary", 0, 1, False)),          # the retry answers
    ({"kind": "status", "status": 401, "times": None}, ("secondary", 1, 1, True)),      # a deployment's fault: no retry
    ({"kind": "drop", "times": None}, ("secondary", 1, 2, True)),
    ({"kind": "sleep", "seconds": 3.0, "times": None}, ("secondary", 1, 2, True)),     # past timeout_s
]


@pytest.mark.parametrize("fault,expected", FAULTS)
def test_complete_falls_back_along_the_chain(pair, fault, expected):
    a, b = pair
    if fault:
        a.fail(**fault)
    engine = _engine(a.url, b.url)
    outcome = asyncio.run(engine.complete(("primary", "secondary"), JOB))
    model, fallbacks, failed, cooled = expected
    assert (outcome.model, outcome.fallbacks, len(outcome.errors)) == (model, fallbacks, failed), outcome.errors
    assert all(e.startswith("primary: ") for e in outcome.errors)
    assert outcome.answer["choices"][0]["message"]["content"].startswith(f"[{model[0]}] you said: What is a tuple?")
    assert (engine.cooldown_left("primary") > 0) == cooled
    assert outcome.upstream_s > 0


def test_the_chain_is_tried_in_the_order_given(pair):
    a, b = pair
    outcome = asyncio.run(_engine(a.url, b.url).complete(("secondary", "primary"), JOB))
    assert (outcome.model, outcome.fallbacks) == ("secondary", 0) and not a.requests


def test_a_cooled_deployment_goes_last_in_the_next_decision(pair):
    """The engine cools a failing deployment; the policy, handed the engine's clock, orders it last (once)."""
    _, b = pair
    engine = _engine(closed_port_url(), b.url)
    first = asyncio.run(engine.complete(("primary", "secondary"), JOB))
    decision = decide(engine.cfg, None, JOB, "local", engine.cooldown_left)
    again = asyncio.run(engine.complete(decision.chain, JOB))
    assert decision.chain == ("secondary", "primary")
    assert (first.model, first.fallbacks, again.model, again.fallbacks) == ("secondary", 1, "secondary", 0)


def test_a_full_queue_moves_on_without_cooling(pair):
    a, b = pair
    engine = _engine(a.url, b.url, primary_queue=1)
    engine.busy["primary"] = 1                 # one call already running on primary
    outcome = asyncio.run(engine.complete(("primary", "secondary"), JOB))
    assert (outcome.model, outcome.fallbacks) == ("secondary", 1)
    assert "queued" in outcome.errors[0] and engine.cooldown_left("primary") == 0 and not a.requests


def test_every_deployment_failing_raises_with_the_outcome(pair):
    a, b = pair
    a.fail("status", status=500, times=None)
    b.fail("status", status=503, times=None)
    engine = _engine(a.url, b.url)
    with pytest.raises(CallFailed) as caught:
        asyncio.run(engine.complete(("primary", "secondary"), JOB))
    failed = caught.value
    assert (failed.status, failed.code) == (503, "all_deployments_failed")
    assert failed.outcome.model == "" and failed.outcome.fallbacks == 1 and len(failed.outcome.errors) == 4
    assert failed.message.startswith("every deployment failed: primary: ") and "secondary: " in failed.message


def test_the_clients_fault_is_not_retried_elsewhere(pair):
    a, b = pair
    a.fail("status", status=400, message="too silly", times=None)
    with pytest.raises(CallFailed) as caught:
        asyncio.run(_engine(a.url, b.url).complete(("primary", "secondary"), JOB))
    assert caught.value.status == 400 and "too silly" in caught.value.message
    assert caught.value.outcome.model == "primary" and not b.requests


def test_a_stream_falls_back_before_its_first_chunk(pair):
    a, b = pair
    a.fail("drop", times=None)
    engine = _engine(a.url, b.url)

    async def read() -> tuple:
        outcome = await engine.open_stream(("primary", "secondary"), JOB)
        first, rest = outcome.answer
        chunks = [first] + [chunk async for chunk in rest]
        return outcome, "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])

    outcome, text = asyncio.run(read())
    assert (outcome.model, outcome.fallbacks) == ("secondary", 1)
    assert text.startswith("[s] you said: What is a tuple?")
    assert engine.busy["secondary"] == 0         # the stream's queue slot is given back when it ends
