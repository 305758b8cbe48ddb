"""A/B experiments of routers: assignment, state, statistics and guardrails."""
