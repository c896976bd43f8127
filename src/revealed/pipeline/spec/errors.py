"""How a reward spec says what is wrong: `SpecError` names the source, the TOML path at fault, what
was expected and what was found; `suggest` and `number_text` are the phrasing its messages share."""

from __future__ import annotations

import difflib
from collections.abc import Collection

from revealed.errors import RevealedError

__all__ = ["SpecError", "number_text", "suggest"]


class SpecError(RevealedError, ValueError):
    """A reward spec that cannot be read; ``path`` is the TOML path at fault (``label.rules[2].when``)."""

    #: its public home, where tracebacks and pickles find it
    __module__ = "revealed.pipeline.spec"
    status = 422

    def __init__(self, path: str, detail: str, *, source: str = "", hint: str = "") -> None:
        super().__init__(": ".join(p for p in (source, path, detail) if p), hint=hint)
        self.path, self.detail, self.source = path, detail, source


def suggest(name: str, options: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def number_text(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
