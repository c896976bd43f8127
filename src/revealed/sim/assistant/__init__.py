"""The LLM-assistant world: model versions of differing latent quality, and the implicit signals
users leave on their responses.

Each prompt (a request) is one turn of a conversation, by a user, in a session (one session per
conversation). A request gets a first response: a decision on the `chat` surface with exactly one
item, the response (`r<k>` for decision `d<k>`). Every response has a latent quality `q` in (0, 1),
drawn from a Beta distribution around its version's mean quality at that time (change points in
`AssistantConfig.drift` move a version's mean). The user then, with probabilities that are
logistic functions of `q` (`Link`):

- regenerates a first response (likelier when `q` is low): a `regenerate` event, then a second
  response for the same `request_id` whose `parent_decision_id` is the first; it replaces the first;
- copies (`copy`, likelier when `q` is high) and edits (`edit`, `properties.edit_distance` larger
  when `q` is low) the response they kept;
- rarely gives explicit feedback on any response (`thumbs_up`/`thumbs_down`, a few percent of
  responses, likelier at extreme quality; the direction follows `q`);
- continues the conversation (the next turn's decision exists, its `parent_decision_id` the kept
  response) or stops; a stop after a poor response is an abandonment: a `session_end` event
  shortly after, and no further turn.

Conversations start by a daily-cycle Poisson process over `days`; turns follow after reading and
thinking time (seconds to minutes). Signals never feed back into quality, so the truth table's
probabilities are exactly the probabilities with which each response got each signal.

>>> sim = simulate_assistant(300, seed=7)
>>> responses = sim.truth.tables["responses"]
>>> sim.decisions.num_rows == responses.num_rows >= 300
True
>>> sorted(set(sim.decisions.column("model_version").to_pylist()))
['assistant@v1', 'assistant@v2']
"""

from revealed.sim.assistant.config import AssistantConfig, Link, expected_signal_rates
from revealed.sim.assistant.simulation import simulate_assistant

__all__ = ["AssistantConfig", "Link", "expected_signal_rates", "simulate_assistant"]
