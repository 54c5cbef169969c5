"""channelbus settings: the ``CHANNELBUS`` dict in Django settings, with defaults here.

Read through :data:`settings` at call time (``settings.MAX_FRAME_BYTES``), so
``override_settings(CHANNELBUS=...)`` works in tests. Every key is documented
in ``docs/settings.md``; an unknown key is a system check error (``channelbus.E001``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

from .protocol.limits import DEFAULT_MAX_FRAME_BYTES

__all__ = ["DEFAULTS", "BusSettings", "settings"]

DEFAULTS: dict[str, Any] = {
    # URL path of the WebSocket endpoint, without leading slash (as in Django's path()).
    "URL": "ws/",
    # Accept connections of signed-out users. Off: they are closed with 4401, unless
    # some registered incoming message class sets ``allow_anonymous = True``.
    "ALLOW_ANONYMOUS": False,
    # Largest incoming frame in UTF-8 bytes; larger ones get error.too_large.
    "MAX_FRAME_BYTES": DEFAULT_MAX_FRAME_BYTES,
    # Token bucket per connection: messages per second (None disables) and burst size.
    "RATE_LIMIT": 50.0,
    "RATE_BURST": 100,
    # Close with 4429 after this many messages in a row were refused by the rate limit.
    "FLOOD_CLOSE_AFTER": 100,
    # Handlers of ``concurrent = True`` types running at once per connection; beyond it
    # a message gets error.rate_limited.
    "MAX_CONCURRENT_HANDLERS": 16,
    # Messages waiting for the in-order handler queue of one connection; beyond it
    # a message gets error.rate_limited.
    "MAX_QUEUED_MESSAGES": 100,
    # Origins ("https://app.example.com") whose pages may open a socket. None: only the request's own
    # (scheme, host and port); "*": any, with system check warning W006.
    "ALLOWED_ORIGINS": None,
    # Seconds a connection token (channelbus.auth.connection_token) stays valid.
    "TOKEN_MAX_AGE": 3600,
    # Close every socket of a user who signs out (django.contrib.auth's user_logged_out), with 4401.
    # A password change, a deactivation or a deletion always closes them (channelbus.publishing.closing).
    "CLOSE_ON_LOGOUT": True,
    # Open connections one signed-in user, and one client address (scope["client"], which uvicorn's
    # --proxy-headers makes the real client's behind a trusted proxy), may have on one server process;
    # one more is closed with 4429. None: no limit (channelbus.server.limits).
    "MAX_CONNECTIONS_PER_USER": 50,
    "MAX_CONNECTIONS_PER_ADDRESS": 200,
    # Topics one connection may follow (auto-joined ones included).
    "MAX_TOPICS_PER_CONNECTION": 100,
    # Seconds a signed topic token (channelbus.topics.topic_token) stays valid.
    "TOPIC_TOKEN_MAX_AGE": 12 * 3600,
    # Seconds a strictly ordered deferred job waits for the one before it before going ahead anyway.
    "STRICT_ORDER_TIMEOUT": 60,
    # Deferred jobs queued or running at once, per connection and per signed-in user (None: no cap);
    # beyond either a message gets error.rate_limited before anything is queued (channelbus.jobs.caps).
    "MAX_JOBS_PER_CONNECTION": 10,
    "MAX_JOBS_PER_USER": 30,
    # Seconds a deferred job of a class without ``timeout`` may run before the reaper counts its worker
    # as lost (None: never); JOB_REAP_GRACE seconds are added to every limit before a job is reaped.
    "JOB_REAP_AFTER": 3600,
    "JOB_REAP_GRACE": 30,
    # Seconds between two passes of the reaper that runbus runs beside django_tasks_db (None: none).
    "JOB_REAP_INTERVAL": 30,
    # Keep a channelbus.models.Connection row per connection, written by deferred jobs.
    "TRACK_CONNECTIONS": False,
    # With TRACK_CONNECTIONS: seconds between two updates of a connection's last activity.
    "ACTIVITY_INTERVAL": 60,
    # Log every refused message (error frame) at INFO; errors of handlers are always logged.
    "LOG_CLIENT_ERRORS": True,
    # Seconds between two checks of the channel layer by each server process: does it answer, and does
    # Redis still hold the process's groups (if not, as after a Redis restart, all are added again at
    # once). 0 or None: no checks (groups are then only renewed hourly).
    "LAYER_CHECK_INTERVAL": 1.0,
    # With LOG_CLIENT_ERRORS: at most this many of those lines per connection per interval of
    # CLIENT_ERROR_LOG_INTERVAL seconds; the rest are counted in one summary line per interval.
    "CLIENT_ERROR_LOG_LINES": 10,
    "CLIENT_ERROR_LOG_INTERVAL": 60,
    # Publish to sockets under uvicorn (websockets-sansio, no compression) by writing one pre-built
    # WebSocket frame to each socket's transport (channelbus.fastpath); off: always the ASGI send.
    "RAW_FRAMES": True,
    # Frames waiting for one socket that cannot take them now (channelbus.server.outbox): over either
    # limit, volatile frames are dropped and the socket is closed with 4408 if it stays over the limit
    # for SLOW_CLIENT_GRACE seconds, or at once at twice the limit.
    "OUTBOX_MAX_FRAMES": 1000,
    "OUTBOX_MAX_BYTES": 1024 * 1024,
    "SLOW_CLIENT_GRACE": 5.0,
    # Topic history (channelbus.transport.history), for kinds whose history_size / history_ttl are None:
    # the last TOPIC_HISTORY_SIZE numbered frames of each topic, each kept TOPIC_HISTORY_TTL seconds,
    # replayed to a client that resubscribes with "since". 0: no history (frames are still numbered).
    "TOPIC_HISTORY_SIZE": 0,
    "TOPIC_HISTORY_TTL": 120,
    # Most frames one resubscribe may replay; a longer gap answers recovered: false.
    "RECOVERY_MAX_FRAMES": 1000,
    # Seconds a request's trace id is remembered per user (or session) and type: a repeat within it
    # runs nothing again and gets the stored terminal reply. 0 or None: off.
    "IDEMPOTENCY_WINDOW": 120,
    # Presence (topic kinds with ``presence``; channelbus.transport.presence): each server process sends
    # at most one presence.diff per topic every PRESENCE_INTERVAL seconds. With Redis, the members of a
    # process that died without cleaning up leave within PRESENCE_EXPIRY seconds (at least 3 intervals).
    "PRESENCE_INTERVAL": 1.0,
    "PRESENCE_EXPIRY": 30.0,
    # Most members a presence.state (or topic.subscribed's presence) lists; beyond it, count and truncated.
    "PRESENCE_MAX_MEMBERS": 1000,
    # Largest member info, encoded as JSON in bytes; a larger one is logged and sent as {}.
    "PRESENCE_MAX_INFO_BYTES": 1024,
    # Serve the AsyncAPI document and its page at the URLs of channelbus.urls, to staff users only
    # (docs/schema.md). Off: they answer 404.
    "SCHEMA_VIEW": False,
}


class BusSettings:
    """Attribute access to ``settings.CHANNELBUS`` merged over :data:`DEFAULTS`.

    Values are cached and dropped when Django's ``setting_changed`` signal fires
    for ``CHANNELBUS``.
    """

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    def user_settings(self) -> dict[str, Any]:
        """The project's ``CHANNELBUS`` dict (empty if unset)."""
        value = getattr(django_settings, "CHANNELBUS", None) or {}
        return dict(value)

    def _merged(self) -> dict[str, Any]:
        if self._cache is None:
            merged = dict(DEFAULTS)
            merged.update(self.user_settings())
            self._cache = merged
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._merged()[name]
        except KeyError:
            raise AttributeError(f"Unknown channelbus setting {name!r}") from None

    def reload(self) -> None:
        """Forget cached values; the next access reads Django settings again."""
        self._cache = None


#: The one settings object.
settings = BusSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "CHANNELBUS":
        settings.reload()


setting_changed.connect(_reload)
