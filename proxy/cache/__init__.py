"""The response cache: the pipeline stage (``stage``), its store (``store``) and backends (``backends``)."""
