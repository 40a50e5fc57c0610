"""Prometheus metrics, one registry per app (requests, tokens, latency, fallbacks, cost vs always-strong).

With several workers (`engrain serve --workers N`) prometheus_client runs in multiprocess mode (router/fleet.py):
each worker's samples go to files under PROMETHEUS_MULTIPROC_DIR and /metrics merges them, counters summed.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from router import fleet
from router.config import RouterConfig

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class Metrics:
    def __init__(self, cfg: RouterConfig) -> None:
        self.cfg = cfg
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("engrain_requests", "Requests answered", ["api", "tier", "model", "status"], registry=r)
        self.tokens = Counter("engrain_tokens", "Tokens in and out", ["tier", "model", "direction"], registry=r)
        self.latency = Histogram("engrain_request_seconds", "Time to response (first byte when streaming)",
                                 ["api", "tier"], buckets=_LATENCY, registry=r)
        self.overhead = Histogram("engrain_overhead_seconds", "Router time excluding the upstream model",
                                  buckets=_OVERHEAD, registry=r)
        self.decision = Histogram("engrain_decision_seconds", "Routing decision time (scoring + policy)",
                                  buckets=_OVERHEAD, registry=r)
        self.responses = Counter("engrain_responses", "Every HTTP response by route and status, 4xx included; "
                                 "499 = the client hung up first", ["path", "status"], registry=r)
        self.fallbacks = Counter("engrain_fallbacks", "Moves to the next deployment", ["from_model"], registry=r)
        self.cooldowns = Counter("engrain_cooldowns", "Deployments put in cooldown", ["model"], registry=r)
        self.stream_errors = Counter("engrain_stream_errors", "Streams ended by an upstream failure", ["model"],
                                     registry=r)
        self.cost = Counter("engrain_cost_usd", "Estimated spend: actual routing vs always the strong tier",
                            ["kind"], registry=r)
        self.cascade = Counter("engrain_cascade", "Cascade outcomes: local reply kept (passed) or escalated",
                               ["outcome"], registry=r)
        self.cascade_saved = Gauge("engrain_cascade_saved_usd", "Estimated spend the cascade saved against always "
                                   "the strong tier (negative while escalations cost more than kept answers save)",
                                   multiprocess_mode="sum", registry=r)

    def record_usage(self, tier: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.tokens.labels(tier, model, "in").inc(prompt_tokens)
        self.tokens.labels(tier, model, "out").inc(completion_tokens)
        m = self.cfg.model(model)
        strong = self.cfg.model(self.cfg.tier(self.cfg.strong_tier).models[0]) if self.cfg.tier(
            self.cfg.strong_tier).models else None
        for kind, price in (("actual", m), ("always_strong", strong)):
            if price is not None:
                self.cost.labels(kind).inc((prompt_tokens * price.cost_per_mtok_in
                                            + completion_tokens * price.cost_per_mtok_out) / 1e6)

    def price(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float:
        m = self.cfg.model(model) if model else None
        return (prompt_tokens * m.cost_per_mtok_in + completion_tokens * m.cost_per_mtok_out) / 1e6 if m else 0.0

    def strong_model(self) -> str | None:
        models = self.cfg.tier(self.cfg.strong_tier).models
        return models[0] if models else None

    def render(self) -> bytes:
        """This process's metrics, or with several workers the whole server's."""
        folder = fleet.metrics_dir()
        if folder is None:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(folder))
        return generate_latest(merged)
