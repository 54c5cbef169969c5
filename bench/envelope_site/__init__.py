"""A minimal channels-envelope 1.1 project for ``bench/deferred.py``'s ``envelope-rq`` case.

It runs only in the throwaway virtualenv ``bench/.envelope-venv`` (channels-envelope requires
pydantic < 2, channelbus pydantic 2), which ``bench/deferred.py`` creates from ``requirements.txt``.
Nothing here is imported by channelbus or its tests.

* ``settings``: SQLite (users, sessions, envelope's ``Connection`` rows), the Redis channel layer and
  one RQ queue, all named by environment variables that ``bench/deferred.py`` sets per run;
* ``asgi``: Django for HTTP, envelope's own ``WebsocketConsumer`` at ``/ws/`` behind Channels'
  ``AuthMiddlewareStack`` (envelope refuses anonymous connections by default);
* ``urls``: ``/`` signs the visitor in as a new user, as the channelbus demo's page does;
* ``messages``: ``bench.job {"n": int}``, a ``DeferredJob`` whose ``run_job`` sends ``s`` with
  ``{"n": n}``: the same work as the channelbus case's ``bench.job``.
"""
