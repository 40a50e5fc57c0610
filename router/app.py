"""The HTTP app: OpenAI and Anthropic chat APIs (routed), /v1/models, /v1/route, /health, /metrics."""
from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from router import cascade, providers
from router.config import ModelConfig, RouterConfig, load_config
from router.cascade import ReplyCheck
from router.convert import AnthropicStream, anthropic_event, from_anthropic, from_openai, openai_chunk, \
    openai_event, to_anthropic
from router.decisions import DecisionLog, DecisionRecord, FeedbackRequest, UnknownResponse
from router.engine import Attempted, Engine
from router.features import topic
from router.errors import ProviderError, RouterError, error_body
from router.guard import Guard, api_of
from router.metrics import Metrics
from router.policy import Decision, decide, estimate_tokens
from router.providers import anthropic as anthropic_provider
from router.providers.anthropic import Native, Relay, usage_of
from router.statuses import CountStatuses
from router.schemas import ChatCompletionRequest, MessagesRequest, RouteRequest
from router.scoring import Scorer, prompt_of


def _headers(decision: Decision | None, att: Attempted | None, t0: float) -> dict[str, str]:
    overhead = (time.perf_counter() - t0 - (att.upstream_s if att else 0.0)) * 1000
    return {"x-engrain-model": (att.model if att and att.model else (decision.chain[0] if decision else "")) or "-",
            "x-engrain-tier": (decision.tier if decision else "") or "-",
            "x-engrain-score": f"{decision.score:.4f}" if decision and decision.score is not None else "-",
            "x-engrain-fallbacks": str(att.fallbacks if att else 0),
            "x-engrain-overhead-ms": f"{overhead:.2f}"}


def _retry_after(exc: RouterError) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(exc.retry_after)))} if exc.retry_after is not None else {}


def _validation_message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "invalid request: " + "; ".join(parts)


def _record(cfg: RouterConfig, response_id: str, api: str, job: dict, decision: Decision, att: Attempted,
            usage: dict, status: str, outcome: str | None) -> DecisionRecord:
    text = prompt_of(job["messages"])[0]
    return DecisionRecord(id=response_id, time=time.time(), api=api, score=decision.score,
                          threshold=decision.threshold, tier=decision.tier, model=att.model or "-", topic=topic(text),
                          prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0), status=status,
                          cascade=outcome, prompt=text if cfg.log_prompts else None)


def create_app(config: RouterConfig | dict | str | None = None, *, api_key: str | None = None,
               scorer: Scorer | None = None, reply_check: ReplyCheck | None = None) -> FastAPI:
    """`reply_check` (job, reply text) -> broken rule names, for the cascade; the CLI builds it from the rules."""
    cfg = config if isinstance(config, RouterConfig) else load_config(config)
    metrics = Metrics(cfg)
    engine = Engine(cfg, metrics)
    scorer = scorer or Scorer(cfg.head)
    log = DecisionLog(cfg.state_db) if cfg.state_db else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the first request must not pay for importing a provider's client (Scorer() loaded its embeddings)
        for m in cfg.models:
            if m.available():
                await asyncio.to_thread(providers.module(m).warm, m)
        yield
        if log:
            log.close()

    app = FastAPI(title="engrain router", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.config, app.state.engine, app.state.metrics, app.state.scorer = cfg, engine, metrics, scorer
    app.state.reply_check, app.state.decisions = reply_check, log
    app.add_middleware(Guard, api_key=api_key, max_body=int(cfg.max_body_mb * 1024 * 1024), max_headers=cfg.max_headers)
    app.add_middleware(CountStatuses, counter=metrics.responses)     # outermost: sees every status

    def fail(api: str, status: int, message: str, code: str | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(error_body(api, status, message, code), status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return fail(api_of(request.url.path), 400, _validation_message(exc))

    @app.exception_handler(ValidationError)
    async def _invalid_inner(request: Request, exc: ValidationError) -> JSONResponse:
        return fail(api_of(request.url.path), 400, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return fail(api_of(request.url.path), exc.status_code, str(exc.detail))

    def decide_for(job: dict, model: str) -> Decision:
        # scoring is a static-embedding lookup (~0.1 ms): a thread hop would cost more than it saves
        decision = decide(cfg, scorer, job, model)
        metrics.decision.observe(decision.decision_ms / 1000)
        decision.chain = engine.order(decision.chain)
        return decision

    async def native_of(request: Request) -> Native:
        # the body as parsed at the door (cached on the request), so it passes through with every field
        return Native(await request.json(),
                      {k: v for k, v in request.headers.items() if k.startswith("anthropic-")})

    def engine_timeout(m: ModelConfig) -> float:
        return m.timeout_s or cfg.timeout_s

    async def until_disconnect(request: Request) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    async def handle(request: Request, api: str, job: dict, model: str, stream: bool,
                     include_usage: bool, native: Native | None = None) -> Response:
        t0 = time.perf_counter()
        decision: Decision | None = None
        att = Attempted()
        outcome: str | None = None
        try:
            decision = decide_for(job, model)
            if stream:
                return await start_stream(request, api, job, decision, att, t0, include_usage, native)
            check = app.state.reply_check
            call = asyncio.ensure_future(cascade.complete(cfg, engine, check, decision, job, att)
                                         if cascade.applies(cfg, check, decision) else engine.complete(decision, job, att, native))
            gone = asyncio.ensure_future(until_disconnect(request))
            await asyncio.wait({call, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not call.done():                  # the client left: stop the upstream call too
                call.cancel()
                metrics.requests.labels(api, decision.tier, att.model or "-", "499").inc()
                return Response(status_code=499)
            gone.cancel()
            completion = call.result()
            if isinstance(completion, tuple):
                completion, outcome = completion
        except RouterError as exc:
            metrics.requests.labels(api, decision.tier if decision else "-", att.model or "-", str(exc.status)).inc()
            return fail(api, exc.status, exc.message, exc.code, {**_headers(decision, att, t0), **_retry_after(exc)})
        decision.tier = cfg.tier_of(att.model)
        passed = providers.passes_through(cfg.model(att.model), native)
        usage = usage_of(completion.get("usage")) if passed else completion.get("usage") or {}
        metrics.record_usage(decision.tier, att.model, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        metrics.requests.labels(api, decision.tier, att.model, "200").inc()
        metrics.latency.labels(api, decision.tier).observe(time.perf_counter() - t0)
        if not passed:                     # a passed-through answer goes back as the upstream wrote it
            completion["model"] = att.model
        body = completion if passed or api == "openai" else to_anthropic(completion, att.model)
        body["id"] = body.get("id") or f"chatcmpl-{uuid.uuid4().hex[:24]}"
        headers = {**_headers(decision, att, t0), "x-engrain-response-id": body["id"]}
        if outcome:
            headers["x-engrain-cascade"] = outcome
        metrics.overhead.observe(float(headers["x-engrain-overhead-ms"]) / 1000)
        if log:
            log.record(_record(cfg, body["id"], api, job, decision, att, usage, "200", outcome))
        return JSONResponse(body, headers=headers)

    async def start_stream(request: Request, api: str, job: dict, decision: Decision, att: Attempted,
                           t0: float, include_usage: bool, native: Native | None) -> Response:
        if api == "openai" and include_usage:
            job = {**job, "stream_options": {"include_usage": True}}
        first, rest = await engine.open_stream(decision, job, att, native)
        decision.tier = cfg.tier_of(att.model)
        headers = _headers(decision, att, t0)
        metrics.overhead.observe(float(headers["x-engrain-overhead-ms"]) / 1000)
        metrics.latency.labels(api, decision.tier).observe(time.perf_counter() - t0)
        tier, model = decision.tier, att.model
        response_id = f"resp_{uuid.uuid4().hex[:24]}"
        headers["x-engrain-response-id"] = response_id
        passed = providers.passes_through(cfg.model(model), native)
        anth = Relay() if passed else AnthropicStream(model) if api == "anthropic" else None
        if anth:
            anth.input_tokens = decision.prompt_tokens

        # the whole stream, first byte included, on the loop's clock (asyncio.timeout_at: no task per chunk)
        deadline = asyncio.get_running_loop().time() + cfg.stream_deadline_s - (time.perf_counter() - t0)

        async def body() -> AsyncIterator[bytes]:
            usage = {"prompt_tokens": 0, "completion_tokens": 0}
            pieces = 0
            status = "200"
            try:
                chunk = first
                while chunk is not None:
                    usage.update({k: v for k, v in (chunk.get("usage") or {}).items() if k in usage and v})
                    pieces += sum(1 for c in chunk.get("choices") or [] if (c.get("delta") or {}).get("content"))
                    if anth:
                        for event in anth.feed(chunk):
                            yield event
                    elif include_usage:
                        yield openai_event(openai_chunk(chunk, model))
                    elif chunk.get("choices"):
                        yield openai_event(openai_chunk({k: v for k, v in chunk.items() if k != "usage"}, model))
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(rest, None)
                if anth:
                    for event in anth.finish():
                        yield event
                else:
                    yield b"data: [DONE]\n\n"
            except (ProviderError, asyncio.TimeoutError) as exc:
                # the response has started: end it with an error event the client's SDK raises
                status = "stream_error"
                metrics.stream_errors.labels(model).inc()
                message = (f"upstream {model} failed mid-stream: {exc.message}" if isinstance(exc, ProviderError)
                           else f"stream ended at the router's stream_deadline_s ({cfg.stream_deadline_s:g} s)")
                if anth:
                    yield anthropic_event("error", error_body("anthropic", 502, message))
                else:
                    yield openai_event(error_body("openai", 502, message))
            finally:
                await rest.aclose()
                metrics.record_usage(tier, model, usage["prompt_tokens"], usage["completion_tokens"] or pieces)
                metrics.requests.labels(api, tier, model, status).inc()
                if log:
                    usage["completion_tokens"] = usage["completion_tokens"] or pieces
                    log.record(_record(cfg, response_id, api, job, decision, att, usage, status, None))

        return StreamingResponse(body(), media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache"})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, req: ChatCompletionRequest) -> Response:
        include_usage = bool((req.stream_options or {}).get("include_usage"))
        return await handle(request, "openai", from_openai(req), req.model, req.stream, include_usage)

    @app.post("/v1/messages")
    async def messages(request: Request, req: MessagesRequest) -> Response:
        return await handle(request, "anthropic", from_anthropic(req), req.model, req.stream, False,
                            await native_of(request))

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request, req: RouteRequest) -> Response:
        t0 = time.perf_counter()
        job = from_anthropic(MessagesRequest.model_validate({**req.model_dump(exclude_none=True), "max_tokens": 1}))
        try:
            d: Decision | None = decide_for(job, req.model)
        except RouterError:                # counting a request that would be refused is still a fair question
            d = None
        m = cfg.model(d.chain[0]) if d else None
        if m is not None and m.provider == "anthropic":
            try:
                counted = await anthropic_provider.count_tokens(m, await native_of(request), engine_timeout(m))
                return JSONResponse(counted, headers=_headers(d, None, t0))
            except ProviderError:
                pass                       # the local estimate below still answers the question
        return JSONResponse({"input_tokens": estimate_tokens(job)}, headers=_headers(d, None, t0))

    @app.post("/v1/route")
    async def route(req: RouteRequest) -> Response:
        t0 = time.perf_counter()
        if req.system is not None or any(isinstance(m.get("content"), list) and any(
                b.get("type") in ("tool_use", "tool_result") for b in m["content"]) for m in req.messages):
            job = from_anthropic(MessagesRequest.model_validate({**req.model_dump(exclude_none=True),
                                                                 "max_tokens": req.max_tokens or 1}))
        else:
            job = from_openai(ChatCompletionRequest.model_validate(req.model_dump(exclude_none=True)))
        try:
            d = decide_for(job, req.model)
        except RouterError as exc:
            return fail("openai", exc.status, exc.message, exc.code, _headers(None, None, t0))
        return JSONResponse({"model": d.chain[0], "tier": d.tier, "score": d.score, "threshold": d.threshold,
                             "chain": d.chain, "reasons": d.reasons, "prompt_tokens_estimate": d.prompt_tokens,
                             "decision_ms": round(d.decision_ms, 3),
                             "cooling_down": {n: round(engine.cooldown_left(n), 1) for n in d.chain
                                              if engine.cooldown_left(n)}},
                            headers=_headers(d, None, t0))

    @app.post("/v1/feedback")
    async def feedback(req: FeedbackRequest) -> Response:
        if log is None:
            return fail("openai", 503, "feedback needs the decision log: run `engrain serve` inside a workspace "
                                       "(or set state_db in the router config)", "decision_log_disabled")
        try:
            seq = await asyncio.to_thread(log.add_feedback, req.response_id, req.rating, req.note)
        except UnknownResponse:
            return fail("openai", 404, f"no routed response with id {req.response_id!r} in the decision log",
                        "response_not_found")
        return JSONResponse({"id": seq, "response_id": req.response_id, "rating": req.rating}, status_code=201)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        names = list(dict.fromkeys(cfg.aliases + [t.name for t in cfg.tiers] + [m.name for m in cfg.models]))
        if request.headers.get("anthropic-version"):
            data = [{"type": "model", "id": n, "display_name": n, "created_at": "2026-01-01T00:00:00Z"} for n in names]
            return JSONResponse({"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]})
        return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                                         "owned_by": "engrain"} for n in names]})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": {m.name: {"provider": m.provider,
                                                    "available": m.available() and not providers.load_error(m),
                                                    "error": providers.load_error(m),
                                                    "cooling_down_s": round(engine.cooldown_left(m.name), 1)}
                                           for m in cfg.models}}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for `engrain serve --workers N`: config and key come from the environment."""
    raw = os.environ.get("ENGRAIN_ROUTER_CONFIG_JSON")
    return create_app(json.loads(raw) if raw else None, api_key=os.environ.get("ENGRAIN_API_KEY") or None)
