"""The fan-out benchmark's Django project and app (``bench/fanout.py`` starts its servers).

One package holds the settings, the app (``bench.all`` topic kind, ``bench.shout`` /
``bench.shouted`` messages, found by channelbus's autodiscovery) and both ASGI modules:
``asgi_bus`` (channelbus) and ``asgi_channels`` (a plain Channels group broadcast).
"""
