"""The flexheg HTTP server: the registry API, plus routers that other parts mount.

``create_app(config)`` builds a FastAPI app; ``flexheg serve`` runs it under uvicorn. Other parts
pass ``routers=[(prefix, router)]`` to serve their APIs in the same process, and the transparency
log is mounted under ``/v1/log`` when ``ServerConfig.translog`` is set.
"""

from flexheg.server._app import API_PREFIX, ServerConfig, TranslogOptions, create_app

__all__ = ["API_PREFIX", "ServerConfig", "TranslogOptions", "create_app"]
