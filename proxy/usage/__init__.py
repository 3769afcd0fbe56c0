"""Usage and cost: prices (``pricing``), the record of each request (``record``), the durable ledger (``ledger``) and the answers to "who spent what" (``query``)."""
