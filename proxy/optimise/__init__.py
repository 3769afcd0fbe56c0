"""Cost optimisation as pure parts: what a model can hold, fewer tokens per call, and routing by cost, speed or load.

``model_limits`` knows context windows and output limits, ``capabilities``
what a request uses and a model lacks, ``trimming`` drops a conversation's
oldest turns, ``prompt_cache`` places Anthropic cache breakpoints,
``headroom`` reads upstream rate-limit headers, ``deployment_stats`` keeps
moving averages and in-flight counts, ``candidates`` describes a routing
choice, ``eligibility`` says why a candidate cannot serve, ``strategies``
orders the rest, and ``savings`` prices what was saved. Token counts come
from :mod:`proxy.tokens`.
"""
