"""Reaching the providers: forwarding, retries and fallback, breakers, key rotation, the connection pool."""
