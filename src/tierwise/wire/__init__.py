"""Wire formats: one package per format, holding both directions.

`wire.openai` and `wire.anthropic` each hold the typed request models of the
gateway's inbound API (validation and the OpenAPI schemas come from them), the
inbound codec (a client's request to the wire-neutral `ChatRequest`, answers and
stream events back) and the outbound codec a provider uses to talk to an upstream
of that format (`ChatRequest` to a request body, the upstream's answers, stream
chunks and errors back to tierwise's types).
"""
