"""Relational steps over the store's tables, written once in Ibis; engine.py picks the backend."""

from revealed.pipeline.engine import Engine, connect
from revealed.pipeline.stats import store_stats

__all__ = ["Engine", "connect", "store_stats"]
