"""Who comes when: users, their sessions and return visits, on one timeline.

Decisions are spread over users by a Zipf-like activity law; each user's decisions fall into
sessions (a new session with probability `new_session`, else the next request a minute or so
later), and sessions are hours to days apart, so users come back. Times are UTC microseconds.

>>> t = timeline(1000, users=50, seed=3)
>>> bool((np.diff(t.timestamp[t.user == t.user[0]]) >= 0).all()), int(t.session.max()) < 1000
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from revealed.sim.frame import DAY_US, HOUR_US, SECOND_US, START_US

__all__ = ["Timeline", "timeline"]


@dataclass(frozen=True)
class Timeline:
    """Per decision (sorted by time): its user, global session number, index of the session
    within the user's sessions, and time."""

    user: np.ndarray
    session: np.ndarray
    session_index: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


def timeline(
    n: int,
    *,
    users: int,
    seed: int,
    start_us: int = START_US,
    days: float = 3.0,
    new_session: float = 0.25,
    within_gap_s: float = 40.0,
    between_gap_h: float = 30.0,
    zipf: float = 1.1,
) -> Timeline:
    """`n` decisions by `users` users over about `days` days."""
    if n < 0 or users < 1:
        raise ValueError(f"n, users: expected n >= 0 and users >= 1, found n={n}, users={users}")
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, users + 1) ** zipf
    user = np.sort(rng.choice(users, size=n, p=weights / weights.sum()))
    first = np.r_[True, user[1:] != user[:-1]] if n else np.zeros(0, bool)
    starts_session = first | (rng.random(n) < new_session)
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, int)
    # heavy users come back more often: their sessions share the period, `between_gap_h` apart at most
    sessions_of_user = np.bincount(user, weights=starts_session, minlength=users)[user]
    between = np.minimum(between_gap_h * HOUR_US, days * DAY_US * 0.5 / np.maximum(sessions_of_user, 1))
    gap = np.where(
        starts_session,
        rng.exponential(1.0, n) * between,
        rng.exponential(within_gap_s * SECOND_US, n) + SECOND_US,
    )
    gap[first] = rng.random(int(first.sum())) * days * DAY_US * 0.5  # when each user first appears
    clock = np.cumsum(gap)
    offset = clock - (clock[group_start] - gap[group_start])
    session = np.cumsum(starts_session) - 1
    session_index = session - session[group_start]
    timestamp = (start_us + offset).astype(np.int64)
    order = np.argsort(timestamp, kind="stable")
    return Timeline(user[order], session[order], session_index[order], timestamp[order])
