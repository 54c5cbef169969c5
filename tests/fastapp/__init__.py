"""Message types and a topic kind added to the demo server by ``tests/test_fastpath.py``."""
