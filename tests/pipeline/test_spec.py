"""The reward spec: defaults, the documented example, errors that name the TOML path, the condition
language (parser, Python evaluation, Ibis translation agreeing on DuckDB), windows and the hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revealed.errors import RevealedError
from revealed.pipeline import spec as spec_module
from revealed.pipeline.spec import (
    DEFAULT_SPEC,
    DERIVED_SIGNALS,
    SIGNALS,
    And,
    Compare,
    Condition,
    Not,
    Or,
    RewardWeights,
    Signal,
    SpecError,
    WindowRule,
    evaluate,
    load_spec,
    parse_condition,
    parse_spec,
    to_ibis,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "reward.toml"
#: the lineage hash of the defaults: changing it orphans every label made with them, so on purpose only
DEFAULT_HASH = "6359d63f9d287d2d07467809184f9b0d3d4c7d9cc057d6d44c9ba82503cd391b"


# --- defaults and the example file -----------------------------------------------------------------


def test_defaults() -> None:
    spec = load_spec()
    assert spec is DEFAULT_SPEC
    assert parse_spec("") == DEFAULT_SPEC
    assert spec.version == 1
    assert (spec.dwell.satisfied_seconds, spec.dwell.heartbeat_idle) == (30.0, "inactive")
    w = spec.windows
    assert (w.default_click_hours, w.default_view_hours, w.return_window_days) == (168.0, 24.0, 30.0)
    assert w.rules == (WindowRule("purchase", "view", 72.0, "email"),)
    assert [(str(r.when), r.label) for r in spec.label.rules] == [
        ("purchase_amount > 0", 4),
        ("saved or shared or copied", 3),
        ("satisfied_click", 2),
        ("clicked", 1),
        ("hidden or not_interested or skipped", -1),
        ("viewed and not clicked and above_last_click", 0),
    ]
    assert spec.label.unknown is None
    assert spec.reward.as_dict() == {
        "clicked": 1.0,
        "satisfied_click": 2.0,
        "purchase_amount": 0.01,
        "saved": 3.0,
        "shared": 3.0,
        "copied": 2.0,
        "hidden": -2.0,
        "not_interested": -3.0,
        "skipped": -0.5,
        "thumbs_up": 5.0,
        "thumbs_down": -5.0,
    }
    assert (spec.aggregate.return_within_days, spec.aggregate.session_gap_minutes) == (7.0, 30.0)
    assert spec.maturity.exclude_immature is True
    assert spec.hash == DEFAULT_HASH


def test_example_file_is_the_defaults() -> None:
    spec = load_spec(EXAMPLE)
    assert spec == DEFAULT_SPEC
    assert spec.hash == DEFAULT_SPEC.hash


def test_public_names_are_sorted_and_exist() -> None:
    assert spec_module.__all__ == sorted(spec_module.__all__)
    assert all(hasattr(spec_module, name) for name in spec_module.__all__)


def test_every_signal_is_documented() -> None:
    doc, example = spec_module.__doc__ or "", EXAMPLE.read_text()
    for name in (*SIGNALS, *DERIVED_SIGNALS):
        assert f"\n{name} " in doc, f"{name} is missing from the signal table of the module docstring"
        assert name in example


def test_present_sections_keep_the_other_defaults() -> None:
    spec = parse_spec(
        "[dwell]\nsatisfied_seconds = 10\n[windows]\nrule = []\n[reward]\nweights = { clicked = 2 }"
    )
    assert spec.dwell.satisfied_seconds == 10.0
    assert spec.windows.rules == ()  # an array replaces the default whole
    assert spec.windows.default_click_hours == 168.0
    assert spec.reward.as_dict() == {"clicked": 2.0}  # so does the weights table
    assert spec.label == DEFAULT_SPEC.label
    assert spec.derived["satisfied_click"] == parse_condition("clicked and active_dwell_s >= 10")


def test_label_and_reward_of_rows() -> None:
    spec = DEFAULT_SPEC
    base = dict.fromkeys(SIGNALS, False) | {"active_dwell_s": 0.0, "purchase_amount": 0.0, "rating": None}
    assert spec.label_of(base | {"viewed": True, "above_last_click": True}) == 0
    assert spec.label_of(base | {"viewed": True}) is None  # below the last click: unknown
    assert spec.label_of(base | {"clicked": True, "active_dwell_s": 5.0}) == 1
    assert spec.label_of(base | {"clicked": True, "active_dwell_s": 30.0}) == 2
    assert spec.label_of(base | {"clicked": True, "purchase_amount": 12.5}) == 4
    assert spec.label_of(base | {"hidden": True}) == -1
    row = base | {"clicked": True, "active_dwell_s": 45.0, "purchase_amount": 100.0, "thumbs_down": True}
    assert spec.reward_of(row) == pytest.approx(1.0 + 2.0 + 1.0 - 5.0)
    assert parse_spec("[label]\nunknown = 7").label_of(base) == 7


# --- errors ----------------------------------------------------------------------------------------


def _rule(when: str) -> str:
    return f'[label]\nrules = [{{ when = "{when}", label = 1 }}]'


def _window(**fields: object) -> str:
    return "[[windows.rule]]\n" + "\n".join(
        f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in fields.items()
    ).replace("'", '"')


PURCHASE_VIEW: dict[str, object] = {"event": "purchase", "touch": "view", "hours": 1}

ERRORS = [
    # unknown names and keys, with suggestions
    (
        _rule("clickd"),
        "label.rules[0].when: expected a condition over known signals, found unknown name 'clickd' "
        "(did you mean 'clicked'?)",
    ),
    (
        "[reward]\nweights = { purchase_amout = 0.1 }",
        "reward.weights.purchase_amout: unknown signal (did you mean 'purchase_amount'?)",
    ),
    ("[dwel]\nsatisfied_seconds = 3", "dwel: unknown key (did you mean 'dwell'?)"),
    (
        "[windows]\ndefualt_click_hours = 3",
        "windows.defualt_click_hours: unknown key (did you mean 'default_click_hours'?)",
    ),
    (_window(**PURCHASE_VIEW, hour=3), "windows.rule[0].hour: unknown key (did you mean 'hours'?)"),
    ("[label]\nrules = [{ when = 'clicked', label = 1, weight = 2 }]", "label.rules[0].weight: unknown key"),
    (
        _window(event="purchse", touch="view", hours=1),
        "windows.rule[0].event: expected an event type, found 'purchse' (did you mean 'purchase'?)",
    ),
    # wrong types
    ('[dwell]\nsatisfied_seconds = "30"', "dwell.satisfied_seconds: expected a number, found string '30'"),
    ("[dwell]\nsatisfied_seconds = true", "dwell.satisfied_seconds: expected a number, found boolean true"),
    (
        '[maturity]\nexclude_immature = "yes"',
        "maturity.exclude_immature: expected a boolean, found string 'yes'",
    ),
    ("dwell = 3", "dwell: expected a table, found number 3"),
    ('version = "1"', "version: expected an integer, found string '1'"),
    ('[label]\nrules = "clicked"', "label.rules: expected an array, found string 'clicked'"),
    ("[label]\nrules = [1]", "label.rules[0]: expected a table, found number 1"),
    (
        "[label]\nrules = [{ when = 'clicked', label = 1.5 }]",
        "label.rules[0].label: expected an integer, found number 1.5",
    ),
    (
        "[label]\nrules = [{ when = 'clicked', label = true }]",
        "label.rules[0].label: expected an integer, found boolean true",
    ),
    ("[label]\nrules = [{ label = 1 }]", "label.rules[0].when: expected a string, found nothing"),
    ("[label]\nrules = [{ when = 3, label = 1 }]", "label.rules[0].when: expected a string, found number 3"),
    (
        '[label]\nunknown = "none"',
        "label.unknown: expected \"null\" or an integer label, found string 'none'",
    ),
    ('[reward]\nweights = { clicked = "1" }', "reward.weights.clicked: expected a number, found string '1'"),
    ("[reward]\nweights = 1", "reward.weights: expected a table, found number 1"),
    ("[windows]\nrule = [3]", "windows.rule[0]: expected a table, found number 3"),
    (_window(event="purchase", touch="view"), "windows.rule[0].hours: expected a number, found nothing"),
    (
        _window(event="purchase", touch="hover", hours=1),
        "windows.rule[0].touch: expected 'click' or 'view', found 'hover'",
    ),
    (
        _window(**PURCHASE_VIEW, surface=""),
        "windows.rule[0].surface: expected a surface name, found an empty string",
    ),
    ('[dwell]\nheartbeat_idle = "active"', "dwell.heartbeat_idle: expected 'inactive'"),
    # out of range
    ("[windows]\ndefault_view_hours = -1", "windows.default_view_hours: expected a number >= 0, found -1.0"),
    (
        "[windows]\nreturn_window_days = -0.5",
        "windows.return_window_days: expected a number >= 0, found -0.5",
    ),
    (
        _window(event="purchase", touch="view", hours=-5),
        "windows.rule[0].hours: expected a number >= 0, found -5.0",
    ),
    ("[dwell]\nsatisfied_seconds = -1", "dwell.satisfied_seconds: expected a number >= 0"),
    ("[dwell]\nsatisfied_seconds = nan", "dwell.satisfied_seconds: expected a finite number >= 0, found nan"),
    (
        "[aggregate]\nsession_gap_minutes = 0",
        "aggregate.session_gap_minutes: expected a number > 0, found 0.0",
    ),
    ("[reward]\nweights = { clicked = inf }", "reward.weights.clicked: expected a finite number, found inf"),
    (
        _window(**PURCHASE_VIEW) + "\n" + _window(**PURCHASE_VIEW),
        "windows.rule[1]: expected one rule per (event, touch, surface), "
        "found ('purchase', 'view', None) again (first in rule[0])",
    ),
    # version and TOML syntax
    ("version = 2", "version: expected 1 (the only version this revealed reads), found 2"),
    ("version = 1\n[dwell]\nsatisfied_seconds = \n", "invalid TOML: Invalid value (at line 3, column 21)"),
    ("[dwell]\n[dwell]", "invalid TOML: Cannot declare ('dwell',) twice (at line 2, column 7)"),
    # the condition language
    (_rule(""), "label.rules[0].when: expected a signal, 'not' or '(' in '', found an empty condition"),
    (
        _rule("clicked and"),
        "expected a signal, 'not' or '(' in 'clicked and', found the end of the condition",
    ),
    (_rule("(clicked or saved"), "expected ')' in '(clicked or saved', found the end of the condition"),
    (
        _rule("clicked saved"),
        "expected 'and', 'or' or the end of the condition in 'clicked saved', found 'saved' at column 9",
    ),
    (_rule("rating >"), "expected a number after rating > in 'rating >', found the end of the condition"),
    (
        _rule("rating > high"),
        "expected a number after rating > in 'rating > high', found 'high' at column 10",
    ),
    (_rule("rating > 1e999"), "expected a finite number in 'rating > 1e999', found '1e999' at column 10"),
    (_rule("3 < rating"), "expected a signal, 'not' or '(' in '3 < rating', found '3' at column 1"),
    (_rule("clicked AND saved"), "found 'AND' at column 9 (hint: operators are lower case: 'and')"),
    (_rule("rating = 3"), "found '=' at column 8 (hint: compare with '==')"),
    (_rule("NOT clicked"), "found 'NOT' at column 1 (hint: operators are lower case: 'not')"),
    (_rule("clicked & saved"), "found '&' at column 9"),
    (_rule("not"), "expected a signal, 'not' or '(' in 'not', found the end of the condition"),
    (
        _rule("clicked and or saved"),
        "expected a signal, 'not' or '(' in 'clicked and or saved', found 'or' at column 13",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_name_the_path_and_what_was_found(text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="reward.toml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("reward.toml: ")
    assert isinstance(caught.value, ValueError | RevealedError)
    assert caught.value.status == 422


def test_load_spec_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"missing\.toml: cannot read the reward spec"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[windows]\ndefault_click_hours = -3\n")
    with pytest.raises(SpecError, match=r"bad\.toml: windows\.default_click_hours: expected a number >= 0"):
        load_spec(bad)


def test_sections_validate_when_built_directly() -> None:
    with pytest.raises(SpecError, match="hours: expected a number >= 0"):
        WindowRule("purchase", "view", -1.0)
    with pytest.raises(SpecError, match="clickd: unknown signal"):
        RewardWeights((("clickd", 1.0),))
    assert WindowRule("x-signup", "click", 2.0).event == "x-signup"  # custom event types are allowed


# --- the condition language ------------------------------------------------------------------------

S = Signal


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("saved or clicked and not hidden", Or((S("saved"), And((S("clicked"), Not(S("hidden"))))))),
        ("not saved and clicked", And((Not(S("saved")), S("clicked")))),
        ("not (saved and clicked)", Not(And((S("saved"), S("clicked"))))),
        ("(saved or clicked) and hidden", And((Or((S("saved"), S("clicked"))), S("hidden")))),
        ("saved or (clicked or hidden)", Or((S("saved"), S("clicked"), S("hidden")))),
        ("not not saved", Not(Not(S("saved")))),
        ("not rating < 3", Not(Compare("rating", "<", 3.0))),
        ("rating>=4", Compare("rating", ">=", 4.0)),
        ("max_scroll > .5", Compare("max_scroll", ">", 0.5)),
        ("rating != -1", Compare("rating", "!=", -1.0)),
        ("purchase_amount <= 1e3", Compare("purchase_amount", "<=", 1000.0)),
        (
            "click_count == 2 or click_count < 1",
            Or((Compare("click_count", "==", 2.0), Compare("click_count", "<", 1.0))),
        ),
        ("  ( ( clicked ) )  ", S("clicked")),
        ("satisfied_click", S("satisfied_click")),
    ],
)
def test_parse_condition(text: str, tree: Condition) -> None:
    assert parse_condition(text) == tree
    assert parse_condition(str(tree)) == tree  # the canonical text parses back to the same tree


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ("saved or clicked and hidden", {"saved": False, "clicked": True, "hidden": False}, False),
        ("(saved or clicked) and hidden", {"saved": True, "clicked": False, "hidden": True}, True),
        ("not saved and clicked", {"saved": False, "clicked": True}, True),
        ("click_count", {"click_count": 2}, True),
        ("click_count", {"click_count": 0}, False),
        ("rating", {"rating": None}, False),
        ("rating >= 4", {"rating": None}, False),
        ("rating != 4", {"rating": None}, False),  # every comparison with null is false
        ("not rating >= 4", {"rating": None}, True),
        ("clicked == 1", {"clicked": True}, True),
        ("purchase_amount > 0", {"purchase_amount": -3.0}, False),
        ("max_scroll >= 0.5 and max_scroll < 1", {"max_scroll": 0.5}, True),
    ],
)
def test_evaluate(text: str, row: dict[str, object], expected: bool) -> None:
    assert evaluate(parse_condition(text), row) is expected


def test_derived_signals_expand_or_fail_clearly() -> None:
    c = parse_condition("satisfied_click")
    spec = parse_spec("[dwell]\nsatisfied_seconds = 10")
    assert evaluate(c, {"clicked": True, "active_dwell_s": 12.0}, derived=spec.derived)
    assert not evaluate(c, {"clicked": True, "active_dwell_s": 9.0}, derived=spec.derived)
    assert evaluate(c, {"satisfied_click": True}, derived=spec.derived)  # a given column wins
    with pytest.raises(SpecError, match=r"needs the signal 'satisfied_click'.*derived=spec\.derived"):
        evaluate(c, {"clicked": True})


# random conditions over every signal, rows with nulls
OPS = (">", ">=", "<", "<=", "==", "!=")
THRESHOLDS = (-1.0, 0.0, 0.5, 1.0, 3.0, 30.0)
leaves = st.one_of(
    st.builds(Signal, st.sampled_from(list(SIGNALS))),
    st.builds(Compare, st.sampled_from(list(SIGNALS)), st.sampled_from(OPS), st.sampled_from(THRESHOLDS)),
)
conditions = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.builds(Not, kids),
        st.lists(kids, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(kids, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=8,
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "bool": st.sampled_from([True, False, None]),
    "count": st.sampled_from([0, 1, 2, 5, None]),
    "number": st.sampled_from([0.0, 0.5, 1.0, 3.0, 4.0, 30.0, 45.0, -1.0, None]),
}
rows = st.fixed_dictionaries({name: VALUES[kind] for name, kind in SIGNALS.items()})
ARROW = {"bool": pa.bool_(), "count": pa.int64(), "number": pa.float64()}


@settings(max_examples=200, deadline=None)
@given(condition=conditions, row=rows)
def test_canonical_text_round_trips(condition: Condition, row: dict[str, object]) -> None:
    text = str(condition)
    reparsed = parse_condition(text)
    assert str(reparsed) == text
    assert evaluate(reparsed, row) == evaluate(condition, row)


@pytest.fixture(scope="module")
def duckdb() -> Any:
    return ibis.duckdb.connect()


def _ibis_truth(
    con: Any, conds: list[Condition], table_rows: list[dict[str, object]], **kw: Any
) -> list[list[bool]]:
    schema = pa.schema([(n, ARROW[k]) for n, k in SIGNALS.items() if n in table_rows[0]])
    t = ibis.memtable(pa.Table.from_pylist(table_rows, schema=schema))
    columns = {name: t[name] for name in schema.names}
    out = con.to_pyarrow(t.select(**{f"c{i}": to_ibis(c, columns, **kw) for i, c in enumerate(conds)}))
    return [out.column(f"c{i}").to_pylist() for i in range(len(conds))]


@settings(max_examples=40, deadline=None)
@given(conds=st.lists(conditions, min_size=1, max_size=6), table_rows=st.lists(rows, min_size=1, max_size=25))
def test_to_ibis_agrees_with_evaluate(
    duckdb: Any, conds: list[Condition], table_rows: list[dict[str, object]]
) -> None:
    truth = _ibis_truth(duckdb, conds, table_rows)
    for c, got in zip(conds, truth, strict=True):
        assert got == [evaluate(c, r) for r in table_rows], str(c)


def test_default_label_rules_in_ibis(duckdb: Any) -> None:
    """The pipeline's use: every default rule over a table without a satisfied_click column."""
    table_rows: list[dict[str, Any]] = [
        dict.fromkeys(SIGNALS, False)
        | {
            "click_count": 0,
            "active_dwell_s": d,
            "max_scroll": 0.0,
            "purchase_amount": p,
            "purchases": 0,
            "returned_amount": 0.0,
            "rating": None,
            "clicked": c,
        }
        for d, p, c in [
            (0.0, 0.0, False),
            (31.0, 0.0, True),
            (5.0, 0.0, True),
            (40.0, 9.0, True),
            (40.0, 0.0, False),
        ]
    ]
    derived = DEFAULT_SPEC.derived
    conds = [r.when for r in DEFAULT_SPEC.label.rules]
    truth = _ibis_truth(duckdb, conds, table_rows, derived=derived)
    for c, got in zip(conds, truth, strict=True):
        assert got == [evaluate(c, r, derived=derived) for r in table_rows], str(c)
    assert truth[2] == [False, True, False, True, False]  # satisfied_click


def test_to_ibis_names_a_missing_column() -> None:
    t = ibis.memtable({"clicked": [True]})
    with pytest.raises(SpecError, match="needs the signal 'saved'"):
        to_ibis(parse_condition("clicked or saved"), {"clicked": t.clicked})


# --- windows and the hash --------------------------------------------------------------------------

WINDOWS = """
[windows]
default_click_hours = 100
default_view_hours = 10
[[windows.rule]]
event = "purchase"
touch = "click"
surface = "email"
hours = 50
[[windows.rule]]
event = "purchase"
touch = "click"
hours = 80
[[windows.rule]]
event = "save"
touch = "view"
hours = 2
"""


@pytest.mark.parametrize(
    ("event", "touch", "surface", "hours"),
    [
        ("purchase", "click", "email", 50.0),  # the surface's rule beats the rule for every surface
        ("purchase", "click", "search", 80.0),
        ("purchase", "click", None, 80.0),
        (
            "purchase",
            "view",
            "email",
            10.0,
        ),  # no rule for views: the default (the defaults' rule was replaced)
        ("save", "view", "home_feed", 2.0),
        ("save", "click", None, 100.0),
        ("x-signup", "view", None, 10.0),
    ],
)
def test_window_hours_most_specific_rule_wins(
    event: str, touch: str, surface: str | None, hours: float
) -> None:
    assert parse_spec(WINDOWS).window_hours(event, touch, surface) == hours


def test_window_hours_refuses_an_unknown_touch() -> None:
    with pytest.raises(SpecError, match="touch: expected 'click' or 'view', found 'hover'"):
        DEFAULT_SPEC.window_hours("purchase", "hover", None)


def test_hash_is_stable_across_key_order_and_spelling() -> None:
    shuffled = """
version = 1
[maturity]
exclude_immature = true
[reward.weights]
thumbs_down = -5
thumbs_up = 5
skipped = -0.5
not_interested = -3
hidden = -2
copied = 2
shared = 3
saved = 3
purchase_amount = 0.01
satisfied_click = 2
clicked = 1
[label]
unknown = "null"
rules = [
  { label = 4, when = "(purchase_amount > 0.0)" },
  { label = 3, when = "saved or (shared or copied)" },
  { label = 2, when = "satisfied_click" },
  { label = 1, when = "clicked" },
  { label = -1, when = "hidden  or not_interested or skipped" },
  { label = 0, when = "(viewed and not clicked) and above_last_click" },
]
[[windows.rule]]
hours = 72.0
surface = "email"
touch = "view"
event = "purchase"
[dwell]
heartbeat_idle = "inactive"
satisfied_seconds = 30.0
"""
    spec = parse_spec(shuffled)
    assert spec == DEFAULT_SPEC
    assert spec.hash == DEFAULT_HASH
    reordered = WINDOWS.split("[[windows.rule]]")
    assert parse_spec(
        "[[windows.rule]]".join([reordered[0], reordered[3], reordered[2], reordered[1]])
    ).hash == (parse_spec(WINDOWS).hash)


@pytest.mark.parametrize(
    "change",
    [
        "[dwell]\nsatisfied_seconds = 31",
        "[windows]\ndefault_view_hours = 25",
        "[windows]\nrule = []",
        "[label]\nunknown = 0",
        '[label]\nrules = [{ when = "clicked", label = 1 }]',
        "[reward]\nweights = { clicked = 1.0 }",
        "[aggregate]\nsession_gap_minutes = 45",
        "[maturity]\nexclude_immature = false",
    ],
)
def test_hash_changes_with_any_value(change: str) -> None:
    changed = parse_spec(change)
    assert changed != DEFAULT_SPEC
    assert len(changed.hash) == 64
    assert changed.hash != DEFAULT_HASH
