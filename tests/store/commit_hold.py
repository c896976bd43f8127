"""Holding a journal's commits open, for tests of what waits on them (the service, group commit)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from revealed.store.journal import Journal


def hold_commits(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[int], threading.Event, threading.Event]:
    """Hold the journal's commits until `release` is set (`entered` is set once the first is
    held); returns those events and the number of appends of each commit, in order."""
    commit, entered, release = journal.append_all, threading.Event(), threading.Event()
    groups: list[int] = []

    def held(appends: Any) -> Any:
        groups.append(len(appends))
        entered.set()
        assert release.wait(30)
        return commit(appends)

    monkeypatch.setattr(journal, "append_all", held)
    return groups, entered, release
