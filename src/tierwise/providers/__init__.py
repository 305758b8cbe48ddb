"""Providers: one per upstream API, each a `Provider` that sends a `ChatRequest` and
returns tierwise types; `registry` builds them from config."""
