"""Limits and budgets per caller key and team: what each may use, counted exactly across workers.

``windows`` and ``periods`` are the arithmetic (a sliding minute, a budget's period);
``demand`` says what a request may use at most; ``memory`` and ``redis_backend`` keep the
counts (one process, or every worker and replica through one Redis); ``limiter`` picks the
backend and survives reloads; ``stage`` is the pipeline stage that checks and reserves
before the upstream is called and settles after; ``rebuild`` restores the memory backend's
budget spend from the usage ledger at start.
"""
