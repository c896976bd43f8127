"""revealed: an implicit-feedback engine.

Log model decisions, ingest the behaviour that follows, and turn it into labels, de-biased
training data, counterfactual evaluations and alerts.

>>> import revealed
>>> revealed.Decision.__name__, revealed.__version__
('Decision', '0.1.0')
"""

from revealed.errors import (
    MissingDependency,
    RevealedError,
    StoreError,
    StoreLocked,
    UnknownKind,
    UnsupportedFile,
    ValidationFailed,
    VersionVacuumed,
)
from revealed.schema import Candidate, Decision, DecisionItem, Event, FieldError, Item, normalise, validate
from revealed.settings import Settings
from revealed.store import IngestReport, Store

__version__ = "0.1.0"

__all__ = [
    "Candidate",
    "Decision",
    "DecisionItem",
    "Event",
    "FieldError",
    "IngestReport",
    "Item",
    "MissingDependency",
    "RevealedError",
    "Settings",
    "Store",
    "StoreError",
    "StoreLocked",
    "UnknownKind",
    "UnsupportedFile",
    "ValidationFailed",
    "VersionVacuumed",
    "__version__",
    "normalise",
    "validate",
]
