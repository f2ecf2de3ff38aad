"""The HTTP API: an OpenAI-compatible chat endpoint plus plain JSON endpoints."""
