"""A small seeded sample of ranking traffic for the demo, until `revealed.sim` ([C]) replaces it.

Decisions show 10 items sampled by a Plackett-Luce policy (so each slot logs its conditional
propensity); users examine slots with a position-biased probability and click relevant items;
some clicks lead to dwell, add-to-cart and purchases. A few malformed rows show the quarantine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _plackett_luce(rng: np.random.Generator, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample k items without replacement by softmax(scores); returns order and P(slot | above)."""
    weights = np.exp(scores - scores.max())
    remaining = weights.copy()
    order, probs = [], []
    for _ in range(k):
        p = remaining / remaining.sum()
        pick = int(rng.choice(len(p), p=p))
        order.append(pick)
        probs.append(float(p[pick]))
        remaining[pick] = 0.0
    return np.array(order), np.array(probs)


def write_sample(out: Path, *, n_decisions: int = 2_000, seed: int = 7) -> dict[str, Path]:
    """Write decisions.ndjson, events.csv, items.parquet and bad.ndjson; returns their paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    n_items, n_users, k = 200, 300, 10
    quality = rng.normal(size=n_items)
    examination = 1.0 / (1.0 + np.arange(k)) ** 0.7
    decisions, events = [], []
    for d in range(n_decisions):
        user = int(rng.integers(n_users))
        ts = START_MS + d * 40_000 + int(rng.integers(30_000))
        candidates = rng.choice(n_items, size=30, replace=False)
        scores = quality[candidates] + rng.normal(scale=0.5, size=30)
        order, cond = _plackett_luce(rng, scores, k)
        surface = ("search", "home_feed", "email")[d % 3]
        decisions.append(
            {
                "decision_id": f"d{d}",
                "timestamp": ts,
                "user_id": f"u{user}",
                "surface": surface,
                "query_id": f"q{int(rng.integers(50))}" if surface == "search" else None,
                "model": "ranker",
                "model_version": ("v1", "v2")[d % 2],
                "context": {"device": ("ios", "android", "web")[user % 3], "hour": (ts // 3_600_000) % 24},
                "items": [
                    {
                        "item_id": f"i{candidates[j]}",
                        "score": round(float(scores[j]), 4),
                        "cond_propensity": round(c, 6),
                    }
                    for j, c in zip(order, cond, strict=True)
                ],
                "policy": {"name": "plackett_luce", "temperature": 1.0},
            }
        )
        for pos, j in enumerate(order):
            relevance = 1.0 / (1.0 + np.exp(-quality[candidates[j]]))
            if rng.random() < examination[pos] * relevance * 0.5:
                t = ts + 2_000 + pos * 700
                base = {"user_id": f"u{user}", "decision_id": f"d{d}", "item_id": f"i{candidates[j]}"}
                events.append({**base, "event_id": f"c{d}-{pos}", "timestamp": t, "type": "click"})
                events.append(
                    {
                        **base,
                        "event_id": f"w{d}-{pos}",
                        "timestamp": t + 30_000,
                        "type": "dwell",
                        "value": round(float(rng.exponential(40)), 1),
                    }
                )
                if rng.random() < 0.1:
                    later = t + int(rng.exponential(6 * 3_600_000))
                    events.append(
                        {
                            **base,
                            "event_id": f"p{d}-{pos}",
                            "timestamp": later,
                            "type": "purchase",
                            "order_id": f"o{d}-{pos}",
                            "value": round(float(rng.uniform(5, 80)), 2),
                        }
                    )
    paths = {
        "decisions": out / "decisions.ndjson",
        "events": out / "events.csv",
        "items": out / "items.parquet",
        "bad": out / "bad.ndjson",
    }
    paths["decisions"].write_text(
        "".join(json.dumps({k: v for k, v in d.items() if v is not None}) + "\n" for d in decisions)
    )
    cols = ["event_id", "timestamp", "type", "user_id", "decision_id", "item_id", "order_id", "value"]
    lines = [",".join(cols)] + [",".join(str(e.get(c, "")) for c in cols) for e in events]
    paths["events"].write_text("\n".join(lines) + "\n")
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "item_id": f"i{i}",
                    "valid_from": "2025-12-01T00:00:00Z",
                    "features": json.dumps(
                        {"quality": round(float(quality[i]), 3), "category": f"c{i % 12}"}
                    ),
                }
                for i in range(n_items)
            ]
        ),
        paths["items"],
    )
    bad = [
        {"event_id": "bad1", "timestamp": START_MS, "type": "clik", "user_id": "u1"},
        {"event_id": "bad2", "timestamp": START_MS // 1000, "type": "click", "user_id": "u1"},
        {
            "decision_id": "bad3",
            "timestamp": START_MS,
            "user_id": "u1",
            "items": [{"item_id": "i1", "cond_propensity": 1.7}],
        },
        {**decisions[0], "model_version": "v9"},  # a known id with a different payload
    ]
    paths["bad"].write_text("".join(json.dumps(b) + "\n" for b in bad) + "{not json\n")
    return paths
