"""Prometheus metrics of the gateway (``GET /metrics``) and the pieces the relay shares.

Every series is read from current state when Prometheus scrapes (custom collectors), not
kept in counters scattered through the code: the gateway's from the database and the
agent, the relay's from its live tunnels and a handful of event counts.
"""
