"""Bad input, answered in OpenAI's shape on every route, and every response counted.

A client's mistake is a 4xx with ``{"error": {"message", "type", "param", "code"}}``, never a
500: a body over the limit is a 413 (refused from its ``Content-Length`` before it is read, or
as soon as a chunked body passes the limit), a body that is not UTF-8 JSON, nests deeper than
:data:`MAX_DEPTH`, has a number too long to read or a lone surrogate a 400 (:func:`loads`), an
unknown route a 404 and a wrong method a 405. :class:`Guarded`, the outermost ASGI layer, also
counts every response by route and status for ``/metrics``, those the app's own handlers never
see included.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.config import error_where
from bastion.serve.schema import error_body
from bastion.serve.telemetry import Metrics

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 64  # JSON nesting a chat request never needs; deeper is refused before validation
SURROGATE = re.compile("[\ud800-\udfff]")
ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # how one can be in UTF-8 JSON at all
ROUTES = ("/v1/chat/completions", "/v1/models", "/v1/feedback", "/healthz", "/metrics")


class ApiError(Exception):
    """An OpenAI-shaped error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type, code
        self.param, self.headers = param, headers or {}

    def response(self) -> Response:
        body = error_body(self.message, type=self.type, code=self.code, param=self.param)
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than {limit} bytes", code="request_too_large")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read no further than ``limit`` bytes (a 413 past it)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def parse(request: Request, model: type[M], limit: int) -> M:
    """The JSON body as ``model``; an OpenAI-shaped 4xx naming the field otherwise."""
    data = loads(await read_body(request, limit))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where, message = error_where(exc, brackets=False)
        where = where or "body"
        raise ApiError(400, f"{where}: {message}", code="invalid_value", param=where) from None


def loads(raw: bytes) -> Any:
    """``raw`` as JSON, or a 400: UTF-8 text (a BOM is skipped), nesting no deeper than
    :data:`MAX_DEPTH`, integers of at most ``sys.get_int_max_str_digits()`` digits, no
    ``NaN`` or ``Infinity`` (Python's parser takes them; an upstream would not), and no
    lone surrogate: JSON may escape half of a UTF-16 pair (``\\ud800``) alone, which is no
    Unicode text to judge, send on or store (I-JSON, RFC 7493 section 2.1, forbids it)."""
    try:  # strict UTF-8: no surrogates encoded as bytes; NaN and Infinity are not JSON
        data = json.loads(raw.decode("utf-8-sig"), parse_constant=_not_json)
    except _NotJson as exc:
        raise ApiError(
            400, f"the body is not JSON: {exc} is not a number", code="invalid_json"
        ) from None
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc.msg}", code="invalid_json") from None
    except RecursionError:
        raise nested_too_deep() from None
    except ValueError:  # the only other error json raises: int()'s limit on digits
        digits = sys.get_int_max_str_digits()
        raise ApiError(
            400, f"the body has a number of more than {digits} digits", code="invalid_json"
        ) from None
    if too_deep(data, MAX_DEPTH):
        raise nested_too_deep()
    if ESCAPED_SURROGATE.search(raw) and (where := lone_surrogate(data)) is not None:
        raise ApiError(
            400,
            f"{where or 'body'}: a lone surrogate (half of a UTF-16 pair) is not Unicode text",
            code="invalid_value",
            param=where or None,
        )
    return data


class _NotJson(Exception):
    """A literal Python's parser takes and JSON has not (``NaN``, ``Infinity``)."""


def _not_json(literal: str) -> Any:
    raise _NotJson(literal)


def nested_too_deep() -> ApiError:
    return ApiError(400, f"the body nests deeper than {MAX_DEPTH}", code="invalid_json")


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests more than ``limit`` arrays and objects deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def lone_surrogate(value: Any) -> str | None:
    """Where in ``value`` (parsed JSON) a string or key holds a lone surrogate, as a dotted
    path (``messages.0.content``; ``""`` for the value itself), or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                return where
            continue
        if isinstance(item, dict):
            if any(SURROGATE.search(key) for key in item):
                return where
            children: Any = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            continue
        stack.extend((child, f"{where}.{key}" if where else str(key)) for key, child in children)
    return None


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, a wrong method) in OpenAI's shape."""
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    where = f"{request.method} {request.url.path}"
    message = {404: f"no route {where}", 405: f"{where}: method not allowed"}.get(
        exc.status_code, str(exc.detail)
    )
    body = error_body(message, type="invalid_request_error", code=codes.get(exc.status_code))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def route_of(path: str) -> str:
    """A bounded label for a path: a known route, ``/review`` for the review pages, or other."""
    if path in ROUTES:
        return path
    return "/review" if path == "/review" or path.startswith("/review/") else "other"


class Guarded:
    """The outermost layer: a declared body over ``limit`` refused before it is read, and
    every response counted by route and status."""

    def __init__(self, app: ASGIApp, *, limit: int, metrics: Metrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_of(scope["path"])

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.responses.labels(route, str(message["status"])).inc()
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await too_large(self.limit).response()(scope, receive, counted)
            return
        await self.app(scope, receive, counted)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
