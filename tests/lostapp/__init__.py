"""Deferred message types for the tests of job caps, cancel_on_disconnect and the reaper (issue 11)."""
