"""Routers of HTTP API v1, one module per API surface (jobs, queue, health)."""
