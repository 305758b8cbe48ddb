"""The Anthropic Messages format: `models` (the typed inbound request), `inbound`
and `events` (the gateway's side), `outbound` (talking to an Anthropic upstream)
and `shapes` (stop reasons, images, tool-use blocks and usage, both ways)."""
