"""The request pipeline, in the order a request meets it.

1. ``access_log``: the request's id and context, the error shape, the one log line
2. ``admission``: refuse at once past ``api.max_in_flight``
3. ``auth``: who is calling
4. ``validation``: read, parse and check the body, once
5. ``routing``: pick the model and its fallback plan
6. then the response cache (:mod:`proxy.cache.stage`) and the handler, which forwards
   (:mod:`proxy.upstream.forwarding`)

``middleware`` runs stages 2 to 6; ``access_log`` is the outer middleware.
"""
