"""Translation between OpenAI Chat Completions and Anthropic Messages, as pure functions.

Outbound (a Chat Completions caller, an Anthropic upstream): ``request`` maps
requests, ``response`` plain answers and ``stream`` stream events.

Inbound (a Messages API caller, an OpenAI-style upstream): ``inbound_request``
maps requests, ``inbound_response`` plain answers and ``inbound_stream``
chunk streams to event streams (and frames events as SSE bytes); ``errors``
gives errors in Anthropic's shape. ``fields`` holds the typed accessors both
directions read a caller's body with.
"""
