"""Bearer-token authentication: a server interceptor that rejects calls without a valid
``authorization: Bearer <token>`` metadata entry with UNAUTHENTICATED.

The standard health service is exempt, because load balancers and Kubernetes probes cannot
send tokens. Tokens are compared in constant time; several may be valid at once (rotation).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from stylecast.errors import StylecastError

AUTH_HEADER = "authorization"
SCHEME = "bearer "
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)
TOKEN_ENV = "STYLECAST_TOKEN"


def read_tokens(path: str | Path) -> tuple[str, ...]:
    """The tokens in a file, one per line (blank lines and ``#`` comments ignored)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise StylecastError(f"cannot read token file {path}: {exc.strerror}") from None
    tokens = tuple(t.strip() for t in lines if t.strip() and not t.strip().startswith("#"))
    if not tokens:
        raise StylecastError(f"token file {path} holds no token")
    return tokens


def client_token(token_file: str | None = None) -> str | None:
    """The token a client sends: the first in ``token_file``, else $STYLECAST_TOKEN, else None."""
    if token_file:
        return read_tokens(token_file)[0]
    return os.environ.get(TOKEN_ENV) or None


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``token`` (empty when there is none)."""
    return ((AUTH_HEADER, f"Bearer {token}"),) if token else ()


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Lets a call through only with one of ``tokens``; ``on_reject(method)`` is told of each
    rejection (for metrics)."""

    def __init__(
        self, tokens: Iterable[str], on_reject: Callable[[str], None] | None = None
    ) -> None:
        self._tokens = tuple(t.encode() for t in tokens)
        if not self._tokens:
            raise StylecastError("token authentication needs at least one token")
        self._on_reject = on_reject

    def authorised(self, metadata: Iterable[tuple[str, Any]] | None) -> bool:
        """Whether ``metadata`` carries an accepted bearer token (also used by the web page)."""
        for key, value in metadata or ():
            if key != AUTH_HEADER or not isinstance(value, str):
                continue
            if value[: len(SCHEME)].lower() != SCHEME:
                continue
            offered = value[len(SCHEME) :].strip().encode()
            # Check every token (no early exit) so timing does not reveal which one matched.
            matches = [hmac.compare_digest(offered, token) for token in self._tokens]
            if any(matches):
                return True
        return False

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        method = handler_call_details.method
        if method.startswith(EXEMPT_PREFIXES) or self.authorised(
            handler_call_details.invocation_metadata
        ):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:  # unknown method: let gRPC answer UNIMPLEMENTED
            return None
        if self._on_reject is not None:
            self._on_reject(method)
        return _rejecting_handler(handler)


def _reject(_request: Any, context: grpc.ServicerContext) -> Any:
    context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        "missing or invalid bearer token (send metadata 'authorization: Bearer <token>')",
    )


def _rejecting_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that answers UNAUTHENTICATED."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_reject, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_reject, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_reject, **kwargs)
    return grpc.unary_unary_rpc_method_handler(_reject, **kwargs)
