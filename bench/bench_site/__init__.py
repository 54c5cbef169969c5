"""The servers under test: a bench-only Django project and two bare echo servers.

Modules are imported by the uvicorn subprocesses that ``bench/run.py`` starts,
with ``bench/`` and ``demo/`` on ``PYTHONPATH``.
"""
