"""llm-gateway: one OpenAI-compatible front door to many language-model providers."""

__version__ = "0.1.0"
