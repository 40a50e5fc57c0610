"""Errors the router raises, and how each API (OpenAI, Anthropic) spells them on the wire."""
from __future__ import annotations

from dataclasses import dataclass

_OPENAI_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}
_ANTHROPIC_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                   503: "overloaded_error", 529: "overloaded_error"}
_CLIENT_FAULT = {400, 413, 422}
_DEPLOYMENT_FAULT = {401, 403, 404}


class InputError(ValueError):
    """A file the user gave (labels, tasks, settings for a head) that the router cannot use; says what is wrong."""


@dataclass
class RouterError(Exception):
    """An error answered to the client with `status` in its API's shape."""

    status: int
    message: str
    code: str | None = None
    retry_after: float | None = None     # seconds, sent as `retry-after` (429/503)

    def __str__(self) -> str:
        return self.message


@dataclass
class ProviderError(Exception):
    """A failed upstream call. retryable: try again / fall back; client_fault: pass it to the client."""

    message: str
    status: int | None = None
    retryable: bool = True
    client_fault: bool = False
    code: str | None = None
    retry_after: float | None = None     # what the upstream asked for (its retry-after header), in seconds

    def __str__(self) -> str:
        return self.message


def upstream_error(message: str, status: int | None, code: str | None = None,
                   retry_after: float | None = None) -> ProviderError:
    """An upstream HTTP failure, classified: the client's fault passes through, a deployment's fault moves on
    without a retry, anything else (429, 5xx, no status at all) is retried and then falls back."""
    if status in _CLIENT_FAULT:
        return ProviderError(message, status, retryable=False, client_fault=True, code=code)
    if status in _DEPLOYMENT_FAULT:
        return ProviderError(message, status, retryable=False)
    return ProviderError(message, status, retryable=status is None or status == 429 or status >= 500,
                         retry_after=retry_after)


def retry_after_s(value: str | None) -> float | None:
    """A `retry-after` header in seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def openai_error(status: int, message: str, code: str | None = None) -> dict:
    kind = _OPENAI_TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def anthropic_error(status: int, message: str, code: str | None = None) -> dict:
    kind = _ANTHROPIC_TYPE.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_body(api: str, status: int, message: str, code: str | None = None) -> dict:
    return (anthropic_error if api == "anthropic" else openai_error)(status, message, code)


def failure_summary(attempts: list[str]) -> str:
    """Every deployment tried, in order, with what it last answered and how many attempts it got, from the
    engine's "name: what happened" per attempt."""
    tried: dict[str, list[str]] = {}
    for entry in attempts:
        name, _, what = entry.partition(": ")
        tried.setdefault(name, []).append(what)
    parts = [f"{name}: {what[-1]} ({len(what)} attempt{'s' if len(what) > 1 else ''})" for name, what in tried.items()]
    return "every deployment failed: " + "; ".join(parts)
