"""The HTTP API: JSON over HTTP, errors as {"error": {"code", "message"}}."""
