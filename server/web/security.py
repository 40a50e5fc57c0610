"""Who may use the review page and how its forms are protected.

- Exposure: loopback by default; any other host needs a token (refused at start without one).
- Token: `Authorization: Bearer T`, or the `?token=T` of the link printed at start, which is traded for an
  HttpOnly cookie and stripped from the address.
- CSRF: a random HttpOnly cookie; every form carries HMAC(server secret, cookie). A cross-site page can neither
  read the cookie nor compute the field, so a POST it forges fails with 403.
- Host: without a token the page answers only to a loopback Host header, so a web page whose domain is made
  to resolve to 127.0.0.1 (DNS rebinding) cannot read or post to it.
- Headers: a Content-Security-Policy that allows only our own files (no inline script or style) plus the usual
  anti-framing and no-sniff headers.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from starlette.requests import Request

TOKEN_COOKIE = "engrain_token"
CSRF_COOKIE = "engrain_csrf"
CSRF_FIELD = "csrf"
TOKEN_ENV = "ENGRAIN_REVIEW_TOKEN"

HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ExposureError(ValueError):
    """The page would be reachable from other machines without a token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_exposure(host: str, token: str | None) -> None:
    if token is not None and len(token) < 16:
        raise ExposureError("the review token is too short: use at least 16 characters, e.g. from "
                            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`")
    if not is_loopback(host) and not token:
        raise ExposureError(
            f"refusing to serve the review page on {host}: it is not a loopback address, and without a token anyone "
            f"who reaches it could approve, reject and edit your dataset. Pass --token SECRET (or set {TOKEN_ENV}), "
            "or serve on 127.0.0.1 (the default).")


def host_ok(request: Request, token: str | None) -> bool:
    if token:
        return True  # a rebinding page has no token
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback(name)


def token_ok(request: Request, token: str | None) -> bool:
    if not token:
        return True
    header = request.headers.get("authorization", "")
    offered = [header[7:] if header.lower().startswith("bearer ") else "",
               request.cookies.get(TOKEN_COOKIE, ""), request.query_params.get("token", "")]
    return any(o and hmac.compare_digest(o.encode(), token.encode()) for o in offered)


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(24)


def csrf_field(secret: bytes, cookie: str) -> str:
    return hmac.new(secret, cookie.encode(), hashlib.sha256).hexdigest()


def csrf_ok(request: Request, secret: bytes, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(csrf_field(secret, cookie), submitted)
