"""The demo as ``bench/fuzz.py`` and ``bench/churn.py`` serve it: see :mod:`fuzz_site.settings`."""
