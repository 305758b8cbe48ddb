"""The Gemini `generateContent` format, outbound only (tierwise talking to Gemini):
`shapes` (finish reasons, parts, usage and errors) and `outbound` (requests,
answers and stream events)."""
