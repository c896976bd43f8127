"""The ingestion service: FastAPI routes over the store (`revealed serve`)."""

from revealed.server.app import create_app

__all__ = ["create_app"]
