"""The public data contract: records, validation, normal form, Arrow schemas, JSON Schema."""

from revealed.schema.arrow import SCHEMAS, TABLES, journal_schema
from revealed.schema.jsonschema import json_schema
from revealed.schema.records import (
    EVENT_TYPES,
    KINDS,
    Candidate,
    Decision,
    DecisionItem,
    Event,
    Item,
    Kind,
    Record,
)
from revealed.schema.rows import TABLE_OF, canonical_json, from_row, normalise, record_id, to_row
from revealed.schema.timefmt import format_time, now_us, parse_time
from revealed.schema.validate import Checked, FieldError, detect_kind, validate, validate_many

__all__ = [
    "Candidate",
    "Checked",
    "Decision",
    "DecisionItem",
    "EVENT_TYPES",
    "Event",
    "FieldError",
    "Item",
    "KINDS",
    "Kind",
    "Record",
    "SCHEMAS",
    "TABLES",
    "TABLE_OF",
    "canonical_json",
    "detect_kind",
    "format_time",
    "from_row",
    "journal_schema",
    "json_schema",
    "normalise",
    "now_us",
    "parse_time",
    "record_id",
    "to_row",
    "validate",
    "validate_many",
]
