"""The HTTP app: OpenAI and Anthropic chat APIs (routed), /v1/models, /v1/route, /health, /metrics. The handlers
share config, engine, metrics, scorer, decision log and the cascade's reply check through `app.state`."""
from __future__ import annotations

import asyncio
import math
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import State
from starlette.exceptions import HTTPException as StarletteHTTPException

from router import cascade, providers
from router.cascade import ReplyCheck
from router.config import RouterConfig, load_config
from router.convert import AnthropicStream, anthropic_event, from_anthropic, from_openai, openai_chunk, \
    openai_event, to_anthropic
from router.decisions import DecisionLog, DecisionRecord, FeedbackRequest, UnknownResponse
from router.engine import CallFailed, Engine, Outcome
from router.errors import ProviderError, RouterError, error_body
from router.features import topic
from router.guard import Guard, api_of
from router.metrics import Metrics
from router.policy import Decision, decide, estimate_tokens
from router.providers import anthropic as anthropic_provider
from router.providers.anthropic import Native, Relay, usage_of
from router.schemas import ChatCompletionRequest, MessagesRequest, RouteRequest
from router.scoring import Scorer, prompt_of
from router.statuses import CountStatuses

routes = APIRouter()


def _headers(tier: str, decision: Decision | None, outcome: Outcome | None, t0: float) -> dict[str, str]:
    overhead = (time.perf_counter() - t0 - (outcome.upstream_s if outcome else 0.0)) * 1000
    return {"x-engrain-model": (outcome.model if outcome else "") or (decision.chain[0] if decision else "-"),
            "x-engrain-tier": tier or "-",
            "x-engrain-score": f"{decision.score:.4f}" if decision and decision.score is not None else "-",
            "x-engrain-fallbacks": str(outcome.fallbacks if outcome else 0),
            "x-engrain-overhead-ms": f"{overhead:.2f}"}


def _fail(api: str, status: int, message: str, code: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(api, status, message, code), status, headers=headers)


def _validation_message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "invalid request: " + "; ".join(parts)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own refusals (a body that does not validate, an unknown path) in the caller's API's error shape."""
    if isinstance(exc, StarletteHTTPException):
        return _fail(api_of(request.url.path), exc.status_code, str(exc.detail))
    return _fail(api_of(request.url.path), 400, _validation_message(exc))


def _record(st: State, response_id: str, api: str, job: dict, decision: Decision, tier: str, model: str,
            usage: dict, status: str, cascaded: str | None) -> None:
    if st.decisions is None:
        return
    text = prompt_of(job["messages"])[0]
    st.decisions.record(DecisionRecord(
        id=response_id, time=time.time(), api=api, score=decision.score, threshold=decision.threshold, tier=tier,
        model=model or "-", topic=topic(text), prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0), status=status, cascade=cascaded,
        prompt=text if st.config.log_prompts else None))


def _decide(st: State, job: dict, model: str) -> Decision:
    # scoring is a static-embedding lookup (~0.1 ms): a thread hop would cost more than it saves
    decision = decide(st.config, st.scorer, job, model, st.engine.cooldown_left)
    st.metrics.decision.observe(decision.decision_ms / 1000)
    return decision


async def _native_of(request: Request) -> Native:
    # the body as parsed at the door (cached on the request), so it passes through with every field
    return Native(await request.json(), {k: v for k, v in request.headers.items() if k.startswith("anthropic-")})


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _answer(request: Request, job: dict, decision: Decision,
                  native: Native | None) -> tuple[Outcome, str | None] | None:
    """The answer and the cascade's verdict, or None when the client left first (the upstream call stops too)."""
    st = request.app.state
    call = asyncio.ensure_future(cascade.answer(st.config, st.engine, st.reply_check, decision, job, native))
    gone = asyncio.ensure_future(_until_disconnect(request))
    await asyncio.wait({call, gone}, return_when=asyncio.FIRST_COMPLETED)
    if not call.done():
        call.cancel()
        return None
    gone.cancel()
    return call.result()


async def _handle(request: Request, api: str, job: dict, model: str, stream: bool, include_usage: bool,
                  native: Native | None = None) -> Response:
    st = request.app.state
    t0 = time.perf_counter()
    decision: Decision | None = None
    try:
        decision = _decide(st, job, model)
        if stream:
            return await _start_stream(st, api, job, decision, t0, include_usage, native)
        answered = await _answer(request, job, decision, native)
    except RouterError as exc:
        outcome = exc.outcome if isinstance(exc, CallFailed) else None
        tier = decision.tier if decision else ""
        st.metrics.requests.labels(api, tier or "-", (outcome.model if outcome else "") or "-", str(exc.status)).inc()
        headers = _headers(tier, decision, outcome, t0)
        if exc.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        return _fail(api, exc.status, exc.message, exc.code, headers)
    if answered is None:
        st.metrics.requests.labels(api, decision.tier, "-", "499").inc()      # no deployment answered
        return Response(status_code=499)
    return _respond(st, api, job, decision, *answered, native, t0)


def _respond(st: State, api: str, job: dict, decision: Decision, outcome: Outcome, cascaded: str | None,
             native: Native | None, t0: float) -> JSONResponse:
    completion, model = outcome.answer, outcome.model
    tier = st.config.tier_of(model)
    passed = providers.passes_through(st.config.model(model), native)
    usage = usage_of(completion.get("usage")) if passed else completion.get("usage") or {}
    st.metrics.record_usage(tier, model, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
    st.metrics.requests.labels(api, tier, model, "200").inc()
    st.metrics.latency.labels(api, tier).observe(time.perf_counter() - t0)
    if not passed:                     # a passed-through answer goes back as the upstream wrote it
        completion["model"] = model
    body = completion if passed or api == "openai" else to_anthropic(completion, model)
    body["id"] = body.get("id") or f"chatcmpl-{uuid.uuid4().hex[:24]}"
    headers = {**_headers(tier, decision, outcome, t0), "x-engrain-response-id": body["id"]}
    if cascaded:
        headers["x-engrain-cascade"] = cascaded
    st.metrics.overhead.observe(float(headers["x-engrain-overhead-ms"]) / 1000)
    _record(st, body["id"], api, job, decision, tier, model, usage, "200", cascaded)
    return JSONResponse(body, headers=headers)


@dataclass
class _Stream:
    """One streamed answer on its way to the client, and how it is spelled."""

    api: str
    job: dict
    decision: Decision
    outcome: Outcome                          # its answer: the first chunk and the rest
    response_id: str
    anth: Relay | AnthropicStream | None      # None: OpenAI chunks
    include_usage: bool
    deadline: float                           # on the loop's clock: the whole stream, first byte included


async def _start_stream(st: State, api: str, job: dict, decision: Decision, t0: float, include_usage: bool,
                        native: Native | None) -> Response:
    if api == "openai" and include_usage:
        job = {**job, "stream_options": {"include_usage": True}}
    outcome = await st.engine.open_stream(decision.chain, job, native)
    tier = st.config.tier_of(outcome.model)
    headers = _headers(tier, decision, outcome, t0)
    st.metrics.overhead.observe(float(headers["x-engrain-overhead-ms"]) / 1000)
    st.metrics.latency.labels(api, tier).observe(time.perf_counter() - t0)
    headers["x-engrain-response-id"] = f"resp_{uuid.uuid4().hex[:24]}"
    passed = providers.passes_through(st.config.model(outcome.model), native)
    anth = Relay() if passed else AnthropicStream(outcome.model) if api == "anthropic" else None
    if anth:
        anth.input_tokens = decision.prompt_tokens
    # asyncio.timeout_at on this deadline: no task per chunk
    deadline = asyncio.get_running_loop().time() + st.config.stream_deadline_s - (time.perf_counter() - t0)
    relay = _Stream(api, job, decision, outcome, headers["x-engrain-response-id"], anth, include_usage, deadline)
    return StreamingResponse(_events(st, relay), media_type="text/event-stream",
                             headers={**headers, "cache-control": "no-cache"})


def _encode(s: _Stream, chunk: dict) -> list[bytes]:
    if s.anth:
        return s.anth.feed(chunk)
    if s.include_usage:
        return [openai_event(openai_chunk(chunk, s.outcome.model))]
    if chunk.get("choices"):
        return [openai_event(openai_chunk({k: v for k, v in chunk.items() if k != "usage"}, s.outcome.model))]
    return []


async def _events(st: State, s: _Stream) -> AsyncIterator[bytes]:
    (chunk, rest), model = s.outcome.answer, s.outcome.model
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    pieces = 0
    status = "200"
    try:
        while chunk is not None:
            usage.update({k: v for k, v in (chunk.get("usage") or {}).items() if k in usage and v})
            pieces += sum(1 for c in chunk.get("choices") or [] if (c.get("delta") or {}).get("content"))
            for event in _encode(s, chunk):
                yield event
            async with asyncio.timeout_at(s.deadline):
                chunk = await anext(rest, None)
        for event in s.anth.finish() if s.anth else [b"data: [DONE]\n\n"]:
            yield event
    except (ProviderError, asyncio.TimeoutError) as exc:
        # the response has started: end it with an error event the client's SDK raises
        status = "stream_error"
        st.metrics.stream_errors.labels(model).inc()
        message = (f"upstream {model} failed mid-stream: {exc.message}" if isinstance(exc, ProviderError)
                   else f"stream ended at the router's stream_deadline_s ({st.config.stream_deadline_s:g} s)")
        yield (anthropic_event("error", error_body("anthropic", 502, message)) if s.anth
               else openai_event(error_body("openai", 502, message)))
    finally:
        await rest.aclose()
        usage["completion_tokens"] = usage["completion_tokens"] or pieces
        tier = st.config.tier_of(model)
        st.metrics.record_usage(tier, model, usage["prompt_tokens"], usage["completion_tokens"])
        st.metrics.requests.labels(s.api, tier, model, status).inc()
        _record(st, s.response_id, s.api, s.job, s.decision, tier, model, usage, status, None)


@routes.post("/v1/chat/completions")
async def chat_completions(request: Request, req: ChatCompletionRequest) -> Response:
    include_usage = bool((req.stream_options or {}).get("include_usage"))
    return await _handle(request, "openai", from_openai(req), req.model, req.stream, include_usage)


@routes.post("/v1/messages")
async def messages(request: Request, req: MessagesRequest) -> Response:
    return await _handle(request, "anthropic", from_anthropic(req), req.model, req.stream, False,
                         await _native_of(request))


@routes.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, req: RouteRequest) -> Response:
    st = request.app.state
    t0 = time.perf_counter()
    job = from_anthropic(MessagesRequest.model_validate({**req.model_dump(exclude_none=True), "max_tokens": 1}))
    try:
        d: Decision | None = _decide(st, job, req.model)
    except RouterError:                    # counting a request that would be refused is still a fair question
        d = None
    m = st.config.model(d.chain[0]) if d else None
    if m is not None and m.provider == "anthropic":
        try:
            counted = await anthropic_provider.count_tokens(m, await _native_of(request), st.config.timeout_of(m))
            return JSONResponse(counted, headers=_headers(d.tier, d, None, t0))
        except ProviderError:
            pass                           # the local estimate below still answers the question
    return JSONResponse({"input_tokens": estimate_tokens(job)}, headers=_headers(d.tier if d else "", d, None, t0))


@routes.post("/v1/route")
async def route(request: Request, req: RouteRequest) -> Response:
    st = request.app.state
    t0 = time.perf_counter()
    if req.system is not None or any(isinstance(m.get("content"), list) and any(
            b.get("type") in ("tool_use", "tool_result") for b in m["content"]) for m in req.messages):
        job = from_anthropic(MessagesRequest.model_validate({**req.model_dump(exclude_none=True),
                                                             "max_tokens": req.max_tokens or 1}))
    else:
        job = from_openai(ChatCompletionRequest.model_validate(req.model_dump(exclude_none=True)))
    try:
        d = _decide(st, job, req.model)
    except RouterError as exc:
        return _fail("openai", exc.status, exc.message, exc.code, _headers("", None, None, t0))
    return JSONResponse({"model": d.chain[0], "tier": d.tier, "score": d.score, "threshold": d.threshold,
                         "chain": d.chain, "reasons": d.reasons, "prompt_tokens_estimate": d.prompt_tokens,
                         "decision_ms": round(d.decision_ms, 3),
                         "cooling_down": {n: round(st.engine.cooldown_left(n), 1) for n in d.chain
                                          if st.engine.cooldown_left(n)}},
                        headers=_headers(d.tier, d, None, t0))


@routes.post("/v1/feedback")
async def feedback(request: Request, req: FeedbackRequest) -> Response:
    log: DecisionLog | None = request.app.state.decisions
    if log is None:
        return _fail("openai", 503, "feedback needs the decision log: run `engrain serve` inside a workspace "
                                    "(or set state_db in the router config)", "decision_log_disabled")
    try:
        seq = await asyncio.to_thread(log.add_feedback, req.response_id, req.rating, req.note)
    except UnknownResponse:
        return _fail("openai", 404, f"no routed response with id {req.response_id!r} in the decision log",
                     "response_not_found")
    return JSONResponse({"id": seq, "response_id": req.response_id, "rating": req.rating}, status_code=201)


@routes.get("/v1/models")
async def models(request: Request) -> Response:
    cfg: RouterConfig = request.app.state.config
    names = list(dict.fromkeys(cfg.aliases + [t.name for t in cfg.tiers] + [m.name for m in cfg.models]))
    if request.headers.get("anthropic-version"):
        data = [{"type": "model", "id": n, "display_name": n, "created_at": "2026-01-01T00:00:00Z"} for n in names]
        return JSONResponse({"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]})
    return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                                     "owned_by": "engrain"} for n in names]})


@routes.get("/health")
async def health(request: Request) -> dict[str, Any]:
    st = request.app.state
    return {"status": "ok", "models": {m.name: {"provider": m.provider,
                                                "available": m.available() and not providers.load_error(m),
                                                "error": providers.load_error(m),
                                                "cooling_down_s": round(st.engine.cooldown_left(m.name), 1)}
                                       for m in st.config.models}}


@routes.get("/metrics")
async def prometheus(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # the first request must not pay for importing a provider's client (Scorer() loaded its embeddings)
    for m in app.state.config.models:
        if m.available():
            await asyncio.to_thread(providers.module(m).warm, m)
    yield
    if app.state.decisions:
        app.state.decisions.close()


def create_app(config: RouterConfig | dict | str | None = None, *, api_key: str | None = None,
               scorer: Scorer | None = None, reply_check: ReplyCheck | None = None) -> FastAPI:
    """`reply_check` (the user's words, reply text) -> broken rule names, for the cascade; the CLI builds it from
    the workspace's rules."""
    cfg = config if isinstance(config, RouterConfig) else load_config(config)
    metrics = Metrics(cfg)
    app = FastAPI(title="engrain router", lifespan=_lifespan, docs_url=None, redoc_url=None)
    app.state.config, app.state.metrics, app.state.engine = cfg, metrics, Engine(cfg, metrics)
    app.state.scorer, app.state.reply_check = scorer or Scorer(cfg.head), reply_check
    app.state.decisions = DecisionLog(cfg.state_db) if cfg.state_db else None
    app.add_middleware(Guard, api_key=api_key, max_body=int(cfg.max_body_mb * 1024 * 1024), max_headers=cfg.max_headers)
    app.add_middleware(CountStatuses, counter=metrics.responses)     # outermost: sees every status
    for error in (RequestValidationError, ValidationError, StarletteHTTPException):
        app.add_exception_handler(error, _refused)
    app.include_router(routes)
    return app
