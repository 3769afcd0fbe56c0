"""The HTTP face: the route table (``routes``), the endpoint handlers (``handlers``) and the server (``server``)."""
