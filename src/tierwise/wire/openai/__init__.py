"""The OpenAI chat-completions format: `models` (the typed inbound request),
`inbound` (the gateway's side), `outbound` (talking to an OpenAI-compatible
upstream) and `shapes` (what both directions share); `embeddings` (`/v1/embeddings`,
both directions), `responses` with `response_events` (the Responses API, mapped
onto chat) and `completions` (the legacy Completions API, mapped onto chat)."""
