"""The assistant world: valid records, determinism, linkage, signals that follow quality as the
truth says, drift, and ingestion into a real store."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from revealed.schema.validate import validate
from revealed.settings import Settings
from revealed.sim.assistant import AssistantConfig, Link, expected_signal_rates, simulate_assistant
from revealed.sim.frame import HOUR_US, START_US
from revealed.sim.world import Simulation, Truth
from revealed.store import Store
from revealed.store.files import ingest_file

N = 30_000


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate_assistant(N, seed=1)


@pytest.fixture(scope="module")
def responses(sim: Simulation) -> dict[str, np.ndarray]:
    """The truth per response, with the signals observed in the records beside it."""
    truth = sim.truth.tables["responses"]
    out = {name: truth.column(name).to_numpy(zero_copy_only=False) for name in truth.column_names}
    index = {d: i for i, d in enumerate(out["decision_id"])}
    events = sim.events
    for kind in ("regenerate", "copy", "edit", "thumbs_up", "thumbs_down", "session_end"):
        rows = events.filter(pc.equal(events.column("type"), kind))
        count = np.zeros(len(index), dtype=np.int64)
        np.add.at(count, [index[d] for d in rows.column("decision_id").to_pylist()], 1)
        out[f"n_{kind}"] = count
    edits = events.filter(pc.equal(events.column("type"), "edit"))
    distance = np.full(len(index), np.nan)
    for d, props in zip(
        edits.column("decision_id").to_pylist(), edits.column("properties").to_pylist(), strict=True
    ):
        distance[index[d]] = int(props.split(":")[1].rstrip("}"))
    out["edit_distance"] = distance
    # continuing: a later turn (another request) names this response as its parent
    decisions = sim.decisions.to_pydict()
    request = dict(zip(decisions["decision_id"], decisions["request_id"], strict=True))
    continued = np.zeros(len(index), dtype=np.int64)
    for d, parent in zip(decisions["decision_id"], decisions["parent_decision_id"], strict=True):
        if parent is not None and request[parent] != request[d]:
            continued[index[parent]] += 1
    out["n_continue"] = continued
    return out


def test_every_record_passes_the_validator() -> None:
    small = simulate_assistant(500, seed=3)
    for kind in ("decision", "event", "item"):
        records = list(small.records(kind))
        assert records
        bad = [(r, c.errors) for r in records if not (c := validate(kind, r)).ok]
        assert not bad, bad[:3]
    types = set(small.events.column("type").to_pylist())
    assert types == {"regenerate", "copy", "edit", "thumbs_up", "thumbs_down", "session_end"}


def test_the_same_seed_gives_the_same_world_and_another_seed_another() -> None:
    a, b, c = (simulate_assistant(800, seed=s) for s in (5, 5, 6))
    for name in ("decisions", "events", "items"):
        assert getattr(a, name).equals(getattr(b, name))
        assert not getattr(a, name).equals(getattr(c, name))
    assert a.truth.tables["responses"].equals(b.truth.tables["responses"])
    assert a.truth.params == b.truth.params


def test_n_is_the_number_of_requests_and_every_response_shows_itself(sim: Simulation) -> None:
    d = sim.decisions
    assert len(set(d.column("request_id").to_pylist())) == N
    assert pc.all(pc.equal(pc.list_value_length(d.column("items")), 1)).as_py()
    shown = pc.list_flatten(d.column("items").combine_chunks()).field("item_id")
    assert shown.to_pylist() == ["r" + x[1:] for x in d.column("decision_id").to_pylist()]
    assert set(d.column("surface").to_pylist()) == {"chat"}
    assert set(d.column("model").to_pylist()) == {"assistant"}
    assert sim.items.column("item_id").to_pylist() == shown.to_pylist()
    times = d.column("timestamp").cast(pa.int64()).to_numpy()
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= START_US
    assert times[-1] - START_US < 4 * 24 * HOUR_US


def test_regenerations_share_the_request_and_point_to_the_first_response(
    responses: dict[str, np.ndarray], sim: Simulation
) -> None:
    d = sim.decisions.to_pydict()
    row = {decision: i for i, decision in enumerate(d["decision_id"])}
    regenerations = np.flatnonzero(responses["regeneration"])
    assert 0.02 * N < len(regenerations) < 0.2 * N
    for i in regenerations:
        parent = row[d["parent_decision_id"][i]]
        assert d["request_id"][parent] == d["request_id"][i]
        assert d["conversation_id"][parent] == d["conversation_id"][i]
        assert responses["regenerated"][parent]
        assert not responses["regeneration"][parent]
        assert d["timestamp"][parent] < d["timestamp"][i]
    # every regenerated response got exactly one regenerate event, nothing else did
    assert np.array_equal(responses["n_regenerate"], responses["regenerated"].astype(np.int64))
    per_request = np.unique(d["request_id"], return_counts=True)[1]
    assert per_request.max() == 2
    assert per_request.sum() - len(per_request) == len(regenerations)


def test_turns_chain_kept_responses_within_a_conversation(
    sim: Simulation, responses: dict[str, np.ndarray]
) -> None:
    d = sim.decisions.to_pydict()
    row = {decision: i for i, decision in enumerate(d["decision_id"])}
    for i, parent_id in enumerate(d["parent_decision_id"]):
        turn = responses["turn"][i]
        if responses["regeneration"][i]:
            continue
        if turn == 0:
            assert parent_id is None
            continue
        parent = row[parent_id]
        assert responses["kept"][parent]
        assert responses["turn"][parent] == turn - 1
        assert d["conversation_id"][parent] == d["conversation_id"][i]
        assert d["session_id"][parent] == d["session_id"][i]
        assert d["user_id"][parent] == d["user_id"][i]
        assert d["timestamp"][parent] < d["timestamp"][i]
    # an abandoned response ends its conversation
    assert not np.any((responses["n_session_end"] > 0) & (responses["n_continue"] > 0))


def test_events_follow_their_decision_and_carry_its_identity(sim: Simulation) -> None:
    d = sim.decisions.select(["decision_id", "timestamp", "user_id", "session_id"]).rename_columns(
        ["decision_id", "served", "u", "s"]
    )
    joined = sim.events.join(d, "decision_id")
    assert joined.num_rows == sim.events.num_rows
    assert pc.all(pc.greater(joined.column("timestamp"), joined.column("served"))).as_py()
    assert pc.all(pc.equal(joined.column("user_id"), joined.column("u"))).as_py()
    assert pc.all(pc.equal(joined.column("session_id"), joined.column("s"))).as_py()
    lag = pc.subtract(joined.column("timestamp").cast(pa.int64()), joined.column("served").cast(pa.int64()))
    assert pc.max(lag).as_py() < HOUR_US


def _quartiles(responses: dict[str, np.ndarray], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = responses["quality"]
    low, high = np.quantile(q[mask], [0.25, 0.75])
    return mask & (q <= low), mask & (q >= high)


def test_signals_move_with_quality_in_the_right_direction(responses: dict[str, np.ndarray]) -> None:
    kept = responses["kept"]
    first = ~responses["regeneration"]
    bottom, top = _quartiles(responses, kept)
    rate = {
        k: (responses[f"n_{k}"][bottom].mean(), responses[f"n_{k}"][top].mean())
        for k in ("copy", "edit", "continue", "session_end")
    }
    assert rate["copy"][1] > rate["copy"][0] + 0.2
    assert rate["edit"][1] < rate["edit"][0]
    assert rate["continue"][1] > rate["continue"][0] + 0.2
    assert rate["session_end"][1] < rate["session_end"][0]
    low, high = _quartiles(responses, first)
    assert responses["n_regenerate"][high].mean() < responses["n_regenerate"][low].mean()
    # explicit feedback: the share of thumbs up grows with quality
    thumbs = (responses["n_thumbs_up"] + responses["n_thumbs_down"]) > 0
    low, high = _quartiles(responses, thumbs)
    assert responses["n_thumbs_up"][high].mean() > responses["n_thumbs_up"][low].mean() + 0.3
    # edits of poor responses change more
    edited = responses["n_edit"] > 0
    low, high = _quartiles(responses, edited)
    assert np.nanmean(responses["edit_distance"][high]) < np.nanmean(responses["edit_distance"][low])


@pytest.mark.parametrize(
    ("signal", "probability"),
    [
        ("regenerate", "p_regenerate"),
        ("copy", "p_copy"),
        ("edit", "p_edit"),
        ("thumbs_up", "p_thumbs_up"),
        ("thumbs_down", "p_thumbs_down"),
        ("continue", "p_continue"),
        ("session_end", "p_abandon"),
    ],
)
def test_each_signal_happens_as_often_as_the_truth_says(
    responses: dict[str, np.ndarray], signal: str, probability: str
) -> None:
    p = responses[probability]
    observed = responses[f"n_{signal}"]
    assert observed.max() <= 1
    sd = math.sqrt(float(np.sum(p * (1 - p))))
    assert abs(observed.sum() - p.sum()) < 4 * sd + 1, (observed.sum(), p.sum(), sd)


def test_edit_distances_average_what_the_truth_says(responses: dict[str, np.ndarray]) -> None:
    edited = responses["n_edit"] > 0
    distance, mean = responses["edit_distance"][edited], responses["mean_edit_distance"][edited]
    assert np.all(distance >= 1)
    assert np.all(distance == np.round(distance))
    # Gamma-Poisson with shape 2: variance of a distance about mean + mean^2 / 2
    se = math.sqrt(float(np.sum(mean + (mean - 1) ** 2 / 2))) / len(mean)
    assert abs(distance.mean() - mean.mean()) < 4 * se


def test_explicit_feedback_is_rare(responses: dict[str, np.ndarray]) -> None:
    thumbs = (responses["n_thumbs_up"] + responses["n_thumbs_down"]).mean()
    assert 0.02 <= thumbs <= 0.05
    assert thumbs < responses["n_copy"].mean() / 4


def test_first_responses_get_the_expected_rates_of_their_version(responses: dict[str, np.ndarray]) -> None:
    expected = expected_signal_rates()
    first = ~responses["regeneration"]
    for version, rates in expected.items():
        mask = first & (responses["model_version"] == version)
        p = rates["regenerate"]
        se = math.sqrt(p * (1 - p) / mask.sum())
        assert abs(responses["n_regenerate"][mask].mean() - p) < 4 * se
        assert abs(responses["quality"][mask].mean() - AssistantConfig().versions[version]) < 0.01
    assert expected["assistant@v2"]["regenerate"] < expected["assistant@v1"]["regenerate"]


def test_a_change_point_moves_the_version_quality_after_it() -> None:
    config = AssistantConfig(drift=((36.0, "assistant@v2", 0.35),))
    world = simulate_assistant(8_000, seed=2, config=config)
    truth = world.truth.tables["responses"]
    t = truth.column("timestamp").cast(pa.int64()).to_numpy()
    q = truth.column("quality").to_numpy()
    v2 = truth.column("model_version").to_numpy(zero_copy_only=False) == "assistant@v2"
    v1 = ~v2
    after = t >= START_US + 36 * HOUR_US
    assert after.mean() > 0.2
    assert (~after).mean() > 0.2
    assert abs(q[v2 & ~after].mean() - 0.65) < 0.02
    assert abs(q[v2 & after].mean() - 0.35) < 0.02
    assert abs(q[v1 & after].mean() - q[v1 & ~after].mean()) < 0.02
    mean = truth.column("mean_quality").to_numpy()
    assert set(np.unique(mean[v2 & after])) == {0.35}
    assert world.truth.params["drift"] == [{"hours": 36.0, "version": "assistant@v2", "quality": 0.35}]


def test_the_files_ingest_into_a_store_with_nothing_rejected(tmp_path: Path) -> None:
    world = simulate_assistant(1_500, seed=4)
    written = world.write(tmp_path / "sim")
    with Store(Settings(data_dir=tmp_path / "data")) as store:
        for kind, name in (("decision", "decisions"), ("event", "events"), ("item", "items")):
            report = ingest_file(store.journal, written[name], kind=kind)  # type: ignore[arg-type]
            assert report.counts == {"accepted": getattr(world, name).num_rows}, report.errors
    truth = Truth.read(tmp_path / "sim" / "truth")
    assert truth.params == world.truth.params
    assert truth.tables["responses"].equals(world.truth.tables["responses"])


def test_users_and_traffic_follow_the_config() -> None:
    config = AssistantConfig(users=3, versions={"m@a": 0.3, "m@b": 0.8}, traffic={"m@b": 1.0})
    world = simulate_assistant(200, seed=0, config=config)
    assert set(world.decisions.column("user_id").to_pylist()) <= {"u0", "u1", "u2"}
    assert set(world.decisions.column("model_version").to_pylist()) == {"m@b"}
    assert world.truth.params["traffic"] == {"m@a": 0.0, "m@b": 1.0}
    assert world.truth.params["users"] == 3
    assert simulate_assistant(1, seed=0).decisions.num_rows >= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users: expected an integer >= 1"),
        ({"versions": {}}, "versions: expected a non-empty mapping"),
        ({"versions": {"v": 0.0}}, "versions['v']: expected a mean quality in (0, 1)"),
        ({"traffic": {"assistant@v9": 1.0}}, "traffic: expected shares of known versions"),
        ({"traffic": {"assistant@v1": -1.0}}, "traffic: expected finite shares >= 0"),
        ({"concentration": 0}, "concentration: expected a number > 0"),
        ({"days": float("nan")}, "days: expected a number of days > 0"),
        ({"max_turns": 0}, "max_turns: expected an integer >= 1"),
        ({"temperature": -1}, "temperature: expected a sampling temperature > 0"),
        ({"copy": (1, 2)}, "copy: expected a Link(intercept, slope)"),
        ({"drift": ((1.0, "assistant@v3", 0.5),)}, "drift[0]: expected a version of versions"),
        ({"drift": ((-1.0, "assistant@v1", 0.5),)}, "drift[0]: expected hours >= 0"),
        ({"drift": ((1.0, "assistant@v1", 1.0),)}, "drift[0]: expected a new mean quality in (0, 1)"),
        ({"drift": ((1.0, "assistant@v1"),)}, "drift[0]: expected (hours after start, version, new mean"),
    ],
)
def test_invalid_configs_are_refused_with_a_message(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        AssistantConfig(**kwargs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: simulate_assistant(0, seed=1), "n: expected a number of prompts >= 1"),
        (lambda: simulate_assistant(10, seed=1.5), "seed: expected an integer"),  # type: ignore[arg-type]
        (lambda: Link(float("inf"), 1.0), "Link.intercept: expected a finite number"),
    ],
)
def test_invalid_arguments_are_refused_with_a_message(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
