"""Circuit breakers, backoff and load balancing: pure decisions, clock passed in."""
