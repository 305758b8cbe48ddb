"""Offline evaluation and calibration of routers on outcome tables."""
