"""Calls the chosen deployments: retries with backoff, fallback along the chain before the first byte,
cooldown of failing deployments. Streaming answers are committed once the first chunk has arrived."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from router import fleet, providers
from router.config import RouterConfig
from router.errors import ProviderError, RouterError
from router.metrics import Metrics
from router.policy import Decision


@dataclass
class Attempted:
    model: str = ""                      # the deployment that answered
    fallbacks: int = 0                   # moves to the next deployment
    upstream_s: float = 0.0              # time spent waiting on providers (to first byte when streaming)
    errors: list[str] = field(default_factory=list)


class AllFailed(RouterError):
    pass


class Engine:
    def __init__(self, cfg: RouterConfig, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        # deployment -> monotonic time it may be used again; shared by a fleet's workers (router/fleet.py)
        self.cooling = fleet.cooldowns(cfg.redis_url, cfg.cooldown_db)

    def cooldown_left(self, name: str) -> float:
        return max(0.0, self.cooling.get(name, 0.0) - time.monotonic())

    def order(self, chain: list[str]) -> list[str]:
        """Cooling deployments go last: tried only when everything else failed."""
        return sorted(chain, key=lambda n: self.cooldown_left(n) > 0)

    def _cool(self, name: str) -> None:
        self.cooling[name] = time.monotonic() + self.cfg.cooldown_s
        self.metrics.cooldowns.labels(name).inc()

    def _timeout(self, name: str) -> float:
        m = self.cfg.model(name)
        return (m.timeout_s if m and m.timeout_s else None) or self.cfg.timeout_s

    async def _attempts(self, decision: Decision, run, att: Attempted):
        """Run `run(model, timeout)` along the chain; returns its first successful result."""
        last: ProviderError | None = None
        chain = self.order(decision.chain)
        for idx, name in enumerate(chain):
            if idx:
                att.fallbacks += 1
                self.metrics.fallbacks.labels(chain[idx - 1]).inc()
            m = self.cfg.model(name)
            timeout = self._timeout(name)
            for attempt in range(self.cfg.retries + 1):
                t0 = time.perf_counter()
                try:
                    result = await asyncio.wait_for(run(m, timeout), timeout)
                    att.upstream_s += time.perf_counter() - t0
                    att.model = name
                    self.cooling.pop(name, None)
                    return result
                except asyncio.TimeoutError:
                    last = ProviderError(f"no answer within {timeout:g}s", 504, retryable=True)
                except ProviderError as exc:
                    last = exc
                att.upstream_s += time.perf_counter() - t0
                att.errors.append(f"{name}: {last}")
                if last.client_fault:
                    att.model = name
                    raise RouterError(last.status or 400, last.message, last.code)
                if not last.retryable:
                    break
                if attempt < self.cfg.retries:
                    await asyncio.sleep(self.cfg.backoff_s * (2 ** attempt))
            self._cool(name)
        status = 504 if last and last.status == 504 else 429 if last and last.status == 429 else 503
        raise AllFailed(status, "every deployment failed: " + "; ".join(att.errors), "all_deployments_failed")

    async def complete(self, decision: Decision, job: dict, att: Attempted, native: Any = None) -> dict:
        """`native`: the client's own request, passed through to deployments of its API family."""
        return await self._attempts(decision, lambda m, t: providers.complete(m, job, native, t), att)

    async def open_stream(self, decision: Decision, job: dict, att: Attempted,
                          native: Any = None) -> tuple[Any, AsyncIterator[Any]]:
        """The first chunk and the rest of the stream of the first deployment that produced one."""

        async def first(m, timeout):
            it = providers.stream(m, job, native, timeout)
            try:
                return await it.__anext__(), it
            except StopAsyncIteration:
                return None, it
            except BaseException:
                await it.aclose()
                raise

        return await self._attempts(decision, first, att)
