"""Drift in routed traffic: detect it, and re-tune a router's threshold to match."""
