"""Metrics, traces and reports over the request log."""
