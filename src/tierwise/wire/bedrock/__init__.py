"""The Bedrock Converse format, outbound only (tierwise talking to Bedrock):
`outbound` (requests, answers and error bodies) and `events` (ConverseStream
events, once the provider has unframed them)."""
