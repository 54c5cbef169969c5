"""The origin check of WebSocket handshakes: the ``Origin`` header against the allowed origins.

An origin is a scheme, a host and a port (``https://app.example.com``, port 443 implied). The allowed
origins are the ``ALLOWED_ORIGINS`` setting: by default (None) only the request's own origin, that is the
``http``/``https`` of the socket's ``ws``/``wss`` scheme with the host and port of its ``Host`` header,
whose host must also pass Django's ``ALLOWED_HOSTS``; a list of origins; or ``"*"`` for any. A browser
always sends ``Origin`` with a WebSocket handshake; a handshake without one (a script) passes only with
``"*"``, or with the default when ``ALLOWED_HOSTS`` contains ``"*"``.

A refused socket is accepted, told why (``s.closing`` with 4403) and closed, so a client can
tell a refused origin from a network failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings
from django.http.request import split_domain_port, validate_host

from ..conf import settings
from ..protocol import CloseCode, encode

if TYPE_CHECKING:
    from asgiref.typing import ASGI3Application, WebSocketScope

__all__ = ["ANY_ORIGIN", "BusOriginValidator", "parse_origin"]

logger = logging.getLogger("channelbus")

#: The value (or list entry) of ``ALLOWED_ORIGINS`` that allows every origin.
ANY_ORIGIN = "*"

#: An origin as compared: scheme (``http`` or ``https``), lower-case host, port.
Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WEB_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
#: Hosts allowed with DEBUG and an empty ALLOWED_HOSTS, as Django's HTTP side allows them.
_DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


def _host_port(authority: str, scheme: str) -> tuple[str, int] | None:
    """``host[:port]`` as (lower-case host, port), the scheme's port if none; None if it is no host."""
    domain, port = split_domain_port(authority)
    if not domain or (port and not port.isdigit()):
        return None
    number = int(port) if port else _DEFAULT_PORTS[scheme]
    return (domain, number) if 0 < number < 65536 else None


@lru_cache(maxsize=256)
def parse_origin(value: str) -> Origin | None:
    """``"https://app.example.com"`` as ``("https", "app.example.com", 443)``; None if it is no origin.

    Only ``http`` and ``https`` origins without user, path, query or fragment parse (``"null"``, a
    ``file:`` page or ``"app.example.com"`` do not). Scheme and host compare case-insensitively.
    """
    scheme, sep, authority = value.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS or not authority or any(c in authority for c in "/?#@\\"):
        return None
    parsed = _host_port(authority, scheme)
    return None if parsed is None else (scheme, *parsed)


def _headers(scope: WebSocketScope, name: bytes) -> list[str]:
    return [value.decode("latin1") for key, value in scope.get("headers", ()) if key.lower() == name]


def own_origin(scope: WebSocketScope) -> Origin | None:
    """The origin of the request itself: ``ws``/``wss`` as ``http``/``https``, host and port of ``Host``.

    Without a ``Host`` header, the ASGI ``server`` of the scope; None if neither names a valid host.
    """
    scheme = _WEB_SCHEMES.get(str(scope.get("scheme") or "ws").lower())
    if scheme is None:
        return None
    hosts = _headers(scope, b"host")
    if len(hosts) == 1:
        parsed = _host_port(hosts[0], scheme)
    elif not hosts and scope.get("server"):
        host, port = scope["server"]  # type: ignore[misc]
        parsed = _host_port(f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}", scheme)
    else:
        parsed = None
    return None if parsed is None else (scheme, *parsed)


def _host_allowed(host: str) -> bool:
    """Whether ``host`` passes Django's ``ALLOWED_HOSTS`` (with Django's fallback under DEBUG)."""
    allowed = list(django_settings.ALLOWED_HOSTS)
    if django_settings.DEBUG and not allowed:
        allowed = _DEBUG_HOSTS
    return validate_host(host, allowed)


def _allowed_list(allowed: Iterable[str]) -> frozenset[Origin] | None:
    """The parsed origins of a list; None when it allows any (``"*"`` in it)."""
    entries = list(allowed)
    if ANY_ORIGIN in entries:
        return None
    return frozenset(origin for entry in entries if (origin := parse_origin(str(entry))) is not None)


async def _deny_origin(scope: object, receive: Any, send: Any) -> None:
    """Accept, say why, and close with 4403, so the client can tell a refused origin apart."""
    event = await receive()
    if event["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    reason = "Origin not allowed."
    await send(
        {
            "type": "websocket.send",
            "text": encode("s.closing", {"code": CloseCode.FORBIDDEN, "reason": reason}),
        }
    )
    await send({"type": "websocket.close", "code": CloseCode.FORBIDDEN, "reason": reason})


class BusOriginValidator:
    """The origin check in front of the bus: refused sockets get ``s.closing`` and close with 4403.

    ``allowed_origins`` (a list of origins, or ``"*"``) replaces the ``ALLOWED_ORIGINS`` setting;
    without it the setting is read at each handshake.
    """

    # Channels' stubs also allow an ASGI 2 application here, which Channels 4 never calls.
    application: ASGI3Application

    def __init__(self, application: Any, allowed_origins: Sequence[str] | str | None = None) -> None:
        self.application = application
        self.allowed_origins = allowed_origins

    def origin_allowed(self, scope: WebSocketScope) -> bool:
        """Whether the handshake's ``Origin`` (or its absence) is allowed for this request."""
        configured = self.allowed_origins if self.allowed_origins is not None else settings.ALLOWED_ORIGINS
        origins = _headers(scope, b"origin")
        if configured is None:
            own = own_origin(scope)
            if own is None or not _host_allowed(own[1]):
                return False
            if not origins:
                return ANY_ORIGIN in django_settings.ALLOWED_HOSTS  # as before ALLOWED_ORIGINS
            return len(origins) == 1 and parse_origin(origins[0]) == own
        allowed = _allowed_list([configured] if isinstance(configured, str) else configured)
        if allowed is None:
            return True
        return len(origins) == 1 and parse_origin(origins[0]) in allowed

    async def __call__(self, scope: WebSocketScope, receive: Any, send: Any) -> None:
        if self.origin_allowed(scope):
            return await self.application(scope, receive, send)
        logger.info(
            "channelbus: origin %r not allowed for host %r; closing with 4403",
            ", ".join(_headers(scope, b"origin")) or None,
            ", ".join(_headers(scope, b"host")) or None,
        )
        return await _deny_origin(scope, receive, send)
