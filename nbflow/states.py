"""Task and run states (the values stored in the ``state`` columns)."""

from __future__ import annotations

# task states
PENDING = "pending"
RUNNING = "running"
SUCCESS = "success"
FAILED = "failed"
UPSTREAM_FAILED = "upstream_failed"
UP_FOR_RETRY = "up_for_retry"
SKIPPED = "skipped"
UP_TO_DATE = "up_to_date"
INTERRUPTED = "interrupted"

#: a task in one of these states will not change again in its run
TASK_FINISHED = frozenset({SUCCESS, FAILED, UPSTREAM_FAILED, SKIPPED, UP_TO_DATE, INTERRUPTED})
#: a task in one of these states counts as done for its downstreams
TASK_OK = frozenset({SUCCESS, UP_TO_DATE})

# run states (a run also uses RUNNING, SUCCESS, FAILED and INTERRUPTED)
RUN_STATES = frozenset({RUNNING, SUCCESS, FAILED, INTERRUPTED})

#: the colour each task state is drawn in (graphs, widgets, reports)
COLOURS = {
    SUCCESS: "#8fd19e",
    FAILED: "#f28b82",
    RUNNING: "#8ab4f8",
    UPSTREAM_FAILED: "#fbbc04",
    INTERRUPTED: "#d7aefb",
    PENDING: "#e8eaed",
    UP_FOR_RETRY: "#fdd663",
    SKIPPED: "#dadce0",
    UP_TO_DATE: "#ccff90",
}
#: a task with no state in the run shown
NO_STATE_COLOUR = "#ffffff"
