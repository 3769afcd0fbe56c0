"""Wire formats as pure functions: SSE framing, stream assembly and replay, OpenAI ⇄ Anthropic translation."""
