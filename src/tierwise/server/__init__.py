"""The HTTP gateway: OpenAI- and Anthropic-compatible routes over `Gateway`."""
