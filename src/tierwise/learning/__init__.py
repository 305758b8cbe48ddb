"""Learned routing: outcome tables, per-model quality predictors, training and evaluation.

Submodules import numpy; import them only where learned routing is used.
"""
