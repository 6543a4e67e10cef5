"""Prometheus metrics on /metrics: counted in the worker and added once a second (tally),
django-prometheus's HTTP metrics on the event loop (http), the server's own (server).
docs/monitoring.md lists each metric and what moves it."""
