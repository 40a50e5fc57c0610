"""Calls the chosen deployments: retries with backoff, fallback along the chain before the first byte,
cooldown of failing deployments. Streaming answers are committed once the first chunk has arrived."""
from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from router import fleet, providers
from router.config import RouterConfig
from router.errors import ProviderError, RouterError, failure_summary
from router.metrics import Metrics


@dataclass
class Outcome:
    """What a routed call did: the deployment that answered, the moves along the chain, every failed attempt,
    and the answer (a completion dict; for a stream, its first chunk and the rest). Built by the engine."""

    model: str = ""                      # the deployment that answered (or refused the client's request)
    fallbacks: int = 0                   # moves to the next deployment
    upstream_s: float = 0.0              # time spent waiting on providers (to first byte when streaming)
    errors: list[str] = field(default_factory=list)   # "deployment: what happened", one per failed attempt
    answer: Any = None


@dataclass
class CallFailed(RouterError):
    """No deployment answered (or one refused the client's request): the error, with what was tried."""

    outcome: Outcome = field(default_factory=Outcome)


class Engine:
    def __init__(self, cfg: RouterConfig, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        # deployment -> monotonic time it may be used again; shared by a fleet's workers (router/fleet.py)
        self.cooling = fleet.cooldowns(cfg.redis_url, cfg.cooldown_db)
        self.busy: dict[str, int] = {}               # deployment -> calls running or waiting on it

    def _admit(self, name: str) -> ProviderError | None:
        """Take a slot on `name`, or say why not: a full queue is load, not a fault, so it cools nothing."""
        m = self.cfg.model(name)
        limit = self.cfg.queue_limit(m) if m else None
        if limit and self.busy.get(name, 0) >= limit:
            return ProviderError(f"{limit} requests already running or queued", 429, retryable=False,
                                 code="queue_full", retry_after=1.0)
        self.busy[name] = self.busy.get(name, 0) + 1
        return None

    def release(self, name: str) -> None:
        self.busy[name] = max(0, self.busy.get(name, 0) - 1)

    def cooldown_left(self, name: str) -> float:
        return max(0.0, self.cooling.get(name, 0.0) - time.monotonic())

    def _cool(self, name: str, at_least: float | None = None) -> None:
        self.cooling[name] = time.monotonic() + max(self.cfg.cooldown_s, at_least or 0.0)
        self.metrics.cooldowns.labels(name).inc()

    async def _attempts(self, chain: tuple[str, ...], run, *, hold: bool = False) -> Outcome:
        """Run `run(model, timeout)` along the chain (in the decision's order); the first successful result is
        the outcome's answer. With `hold` the deployment's queue slot stays taken (a stream's caller releases it
        when the stream ends)."""
        errors: list[ProviderError] = []
        outcome = Outcome()
        for idx, name in enumerate(chain):
            if idx:
                outcome.fallbacks += 1
                self.metrics.fallbacks.labels(chain[idx - 1]).inc()
            refused = self._admit(name)
            if refused:
                errors.append(refused)
                outcome.errors.append(f"{name}: {refused}")
                continue
            try:
                result = await self._deployment(name, run, outcome, errors)
            except BaseException:
                self.release(name)
                raise
            if result is not _FAILED:
                if not hold:
                    self.release(name)
                outcome.answer = result
                return outcome
            self.release(name)
        raise _all_failed(errors, outcome)

    async def _deployment(self, name: str, run, outcome: Outcome, errors: list[ProviderError]):
        """Retries on one deployment; its result, or _FAILED after cooling it down (never for a client's fault,
        which is raised as the client's error)."""
        m = self.cfg.model(name)
        timeout = self.cfg.timeout_of(m)
        for attempt in range(self.cfg.retries + 1):
            t0 = time.perf_counter()
            try:
                result = await asyncio.wait_for(run(m, timeout), timeout)
                outcome.upstream_s += time.perf_counter() - t0
                outcome.model = name
                self.cooling.pop(name, None)
                return result
            except asyncio.TimeoutError:
                last = ProviderError(f"no answer within {timeout:g}s", 504, retryable=True)
            except ProviderError as exc:
                last = exc
            outcome.upstream_s += time.perf_counter() - t0
            outcome.errors.append(f"{name}: {last}")
            errors.append(last)
            if last.client_fault:
                outcome.model = name
                raise CallFailed(last.status or 400, last.message, last.code, outcome=outcome)
            wait = self.cfg.backoff_s * (2 ** attempt) if last.retry_after is None else last.retry_after
            # an upstream that asks for a long pause is not waited on: the next deployment answers now
            if not last.retryable or wait > self.cfg.max_retry_after_s:
                break
            if attempt < self.cfg.retries:
                await asyncio.sleep(wait)
        self._cool(name, last.retry_after)
        return _FAILED

    async def complete(self, chain: tuple[str, ...], job: dict, native: Any = None) -> Outcome:
        """`native`: the client's own request, passed through to deployments of its API family."""
        return await self._attempts(chain, lambda m, t: providers.complete(m, job, native, t))

    async def open_stream(self, chain: tuple[str, ...], job: dict, native: Any = None) -> Outcome:
        """The outcome of the first deployment that produced a chunk; its answer: that chunk and the rest."""

        async def first(m, timeout):
            it = providers.stream(m, job, native, timeout)
            try:
                return await it.__anext__(), it
            except StopAsyncIteration:
                return None, it
            except BaseException:
                await it.aclose()
                raise

        outcome = await self._attempts(chain, first, hold=True)
        chunk, it = outcome.answer
        slot = _Slot(self, outcome.model)
        outcome.answer = chunk, _releasing(it, slot)
        # a client that leaves before the body starts never runs the generator's finally: release on collection
        weakref.finalize(outcome.answer[1], slot.release)
        return outcome


class _Slot:
    """One taken queue place, released exactly once."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name, self.held = engine, name, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.engine.release(self.name)


async def _releasing(it: AsyncIterator[dict], slot: _Slot) -> AsyncIterator[dict]:
    try:
        async for chunk in it:
            yield chunk
    finally:
        slot.release()
        await it.aclose()


_FAILED = object()


def _all_failed(errors: list[ProviderError], outcome: Outcome) -> CallFailed:
    """Named after the last failure: 504 when it timed out, 429 when it was busy or rate-limited (with the
    shortest retry-after any deployment gave), 503 otherwise."""
    last = errors[-1].status if errors else None
    status = 504 if last == 504 else 429 if last == 429 else 503
    waits = [e.retry_after for e in errors if e.retry_after is not None]
    return CallFailed(status, failure_summary(outcome.errors), "all_deployments_failed",
                      retry_after=min(waits) if waits and status in (429, 503) else None, outcome=outcome)
