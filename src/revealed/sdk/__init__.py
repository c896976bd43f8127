"""The Python SDK: log decisions, events and items from an application, batched and durable."""

from revealed.sdk.aclient import AsyncClient
from revealed.sdk.client import Client
from revealed.sdk.core import ClientStats, RecordError

__all__ = ["AsyncClient", "Client", "ClientStats", "RecordError"]
