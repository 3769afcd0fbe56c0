"""Translation between OpenAI Chat Completions and Anthropic Messages, as pure functions.

``request`` maps requests, ``response`` plain answers and ``stream`` stream events.
"""
