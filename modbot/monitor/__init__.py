"""Figures for whoever runs the server: Prometheus metrics, /healthz and the push heartbeat."""
