"""Metrics, reports and the dashboard over the request log."""
