"""Token counts of Chat Completions requests, exact where a tokenizer ships with its tables.

``encodings`` says which OpenAI encoding a model uses, ``bpe`` loads those
encodings' tables from the ``bpe-openai`` package (nothing is downloaded),
``estimate`` is the documented estimate for every other model family,
``counting`` counts a request's prompt, and ``bound`` is the cheap upper bound
that decides whether counting is needed at all.
"""
