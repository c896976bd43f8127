"""The reward spec: how the behaviour around one served item becomes a label and a scalar reward.

A spec is pure configuration, written in TOML (``examples/reward.toml`` shows and explains every
key), parsed into frozen dataclasses that the pipeline reads to build its Ibis expressions, and
hashed (``RewardSpec.hash``) so every label and dataset records the spec that made it. A missing
section or key takes its default (``DEFAULT_SPEC``); a present array (``label.rules``,
``windows.rule``) or table (``reward.weights``) replaces the default one whole.

Signals: the pipeline computes one row per (decision, item) served with these columns. They are
the contract between spec and pipeline, and the only names conditions and weights may use.

==================  =======  ===================================================================
signal              kind     meaning
==================  =======  ===================================================================
viewed              bool     an ``impression`` was logged, the list was scrolled down to the item,
                             or the item is at or above the decision's last click
clicked             bool     at least one ``click``
click_count         count    number of ``click`` events
active_dwell_s      number   sum of the intervals (``value``) of ``heartbeat`` events with
                             ``properties.active`` true; the client's ``dwell`` seconds only when
                             the item has no heartbeats
max_scroll          number   deepest ``scroll`` in the item's page, 0-1
skipped             bool     at least one ``skip``
hidden              bool     at least one ``hide``
not_interested      bool     at least one ``not_interested``
saved               bool     at least one ``save``
shared              bool     at least one ``share``
copied              bool     at least one ``copy``
added_to_cart       bool     at least one ``add_to_cart``, direct or credited by window
purchase_amount     number   ``purchase`` amounts net of the ``return`` amounts of the same lines
purchases           count    ``purchase`` events credited to the item by the first credit model
                             (last touch by default; fractional where credit is split)
returned_amount     number   ``return`` amounts of those purchases (each at most its purchase),
                             credited as the purchases are
thumbs_up           bool     at least one ``thumbs_up``
thumbs_down         bool     at least one ``thumbs_down``
rating              number   the highest ``rating`` value, or null
above_last_click    bool     the item is at or above the decision's last clicked position
satisfied_click     bool     derived: ``clicked and active_dwell_s >= dwell.satisfied_seconds``
==================  =======  ===================================================================

Conditions (``label.rules[].when``) are a tiny expression language over these signals, parsed
(never evaluated as Python) into a typed AST; its grammar and its two-valued logic, the same in
``evaluate`` (Python) and ``to_ibis`` (any Ibis backend), are in
``revealed.pipeline.spec.condition``.

Errors: ``SpecError`` (a ``RevealedError`` and ``ValueError``, HTTP 422) names the source, the TOML
path, what was expected and what was found.

>>> spec = parse_spec("[dwell]\\nsatisfied_seconds = 10")
>>> spec.dwell.satisfied_seconds, spec.window_hours("purchase", "click", None)
(10.0, 168.0)
>>> row = {"viewed": True, "clicked": True, "active_dwell_s": 12.0, "purchase_amount": 0.0,
...        "saved": False, "shared": False, "copied": False}
>>> spec.label_of(row)
2
>>> when = parse_condition("clicked and not (hidden or rating < 3)")
>>> print(when)
clicked and not (hidden or rating < 3)
>>> evaluate(when, {"clicked": True, "hidden": False, "rating": None})
True
"""

from revealed.pipeline.spec.condition import (
    And,
    Compare,
    Condition,
    Not,
    Or,
    Signal,
    evaluate,
    parse_condition,
    to_ibis,
)
from revealed.pipeline.spec.errors import SpecError
from revealed.pipeline.spec.read import load_spec, parse_spec
from revealed.pipeline.spec.sections import (
    DEFAULT_SPEC,
    SPEC_VERSION,
    AggregateSpec,
    DwellSpec,
    LabelRule,
    LabelSpec,
    MaturitySpec,
    RewardSpec,
    RewardWeights,
    WindowRule,
    WindowSpec,
)
from revealed.pipeline.spec.signals import DERIVED_SIGNALS, SIGNALS

__all__ = [
    "AggregateSpec",
    "And",
    "Compare",
    "Condition",
    "DEFAULT_SPEC",
    "DERIVED_SIGNALS",
    "DwellSpec",
    "LabelRule",
    "LabelSpec",
    "MaturitySpec",
    "Not",
    "Or",
    "RewardSpec",
    "RewardWeights",
    "SIGNALS",
    "SPEC_VERSION",
    "Signal",
    "SpecError",
    "WindowRule",
    "WindowSpec",
    "evaluate",
    "load_spec",
    "parse_condition",
    "parse_spec",
    "to_ibis",
]
