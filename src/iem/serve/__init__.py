"""``iem serve``: a web page and an HTTP API over IEM (the optional ``serve`` extra).

:func:`create_app` builds the ASGI app (Starlette); ``iem serve`` runs it on uvicorn.
"""

from iem.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
