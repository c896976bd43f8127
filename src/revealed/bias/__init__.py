"""Presentation and selection bias: examination estimates and click models.

The probability that a user looks at a slot is *examination*; it is never called propensity
(the probability that the logging policy served an item in a slot). The modules here estimate
examination and relevance from logged clicks, each from sufficient statistics that the engine
aggregates, so that no step needs every raw row in one Python process.
"""

__all__: list[str] = []
