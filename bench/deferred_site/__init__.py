"""The deferred benchmark's app, added to the demo (``bench/deferred.py`` starts the processes).

``messages`` registers ``bench.job {"n": int}``, a deferred message whose sync handler returns
``{"n": n}`` at once, so what is measured is the queue and the frames, not the handler.
``settings`` is the demo's settings with this app added and the per-connection rate limit off.
"""
