"""Job statuses, priorities and the transitions the engine allows between them."""

from enum import Enum


class Status(str, Enum):
	"""A job's status (its `status` column), and SKIPPED: what a run reports when its queue
	message was stale, which no job is ever in. Members are strings, equal to the stored text."""

	SCHEDULED = "Scheduled"
	PENDING = "Pending"
	QUEUED = "Queued"
	RUNNING = "Running"
	COMPLETED = "Completed"
	FAILED = "Failed"
	TIMED_OUT = "Timed Out"
	CANCELED = "Canceled"
	DEAD_LETTER = "Dead Letter"
	PAUSED = "Paused"
	SKIPPED = "skipped"

	# The text, in messages and f-strings, on every Python the project supports (3.10 has no StrEnum).
	__str__ = str.__str__
	__format__ = str.__format__


SCHEDULED = Status.SCHEDULED
PENDING = Status.PENDING
QUEUED = Status.QUEUED
RUNNING = Status.RUNNING
COMPLETED = Status.COMPLETED
FAILED = Status.FAILED
TIMED_OUT = Status.TIMED_OUT
CANCELED = Status.CANCELED
DEAD_LETTER = Status.DEAD_LETTER
PAUSED = Status.PAUSED
SKIPPED = Status.SKIPPED

STATUSES = (SCHEDULED, PENDING, QUEUED, RUNNING, COMPLETED, FAILED, TIMED_OUT, CANCELED, DEAD_LETTER, PAUSED)
# Failed and Timed Out wait for their next attempt; only these three never change on their own.
TERMINAL = frozenset({COMPLETED, CANCELED, DEAD_LETTER})
UNFINISHED = tuple(s for s in STATUSES if s not in TERMINAL)
WAITING_RETRY = (FAILED, TIMED_OUT)
ADMIN_RETRYABLE = (FAILED, TIMED_OUT, DEAD_LETTER)
# A pause takes these at once; a Running job pauses at its next checkpoint.
PAUSABLE_AT_ONCE = (SCHEDULED, PENDING, QUEUED, FAILED, TIMED_OUT)
TYPE_PAUSE = "Job Type"  # paused_by of the jobs that their job type's pause stopped at a checkpoint

ALLOWED = {
	None: {SCHEDULED, PENDING, QUEUED},
	# Due (run_at reached): queued, or Pending while its parent has not completed; paused at once.
	SCHEDULED: {QUEUED, PENDING, CANCELED, PAUSED},
	PENDING: {QUEUED, CANCELED, PAUSED},
	QUEUED: {RUNNING, PENDING, CANCELED, DEAD_LETTER, PAUSED},
	RUNNING: {COMPLETED, FAILED, TIMED_OUT, CANCELED, DEAD_LETTER, PAUSED},
	FAILED: {QUEUED, CANCELED, DEAD_LETTER, PAUSED},
	TIMED_OUT: {QUEUED, CANCELED, DEAD_LETTER, PAUSED},
	# Resumed: back to the queue, to Pending while its parent or its organization's room waits, or
	# to Scheduled while its run_at is still ahead.
	PAUSED: {QUEUED, PENDING, CANCELED, SCHEDULED},
	DEAD_LETTER: {QUEUED},
	COMPLETED: set(),
	CANCELED: set(),
}

PRIORITIES = ("Critical", "High", "Normal", "Low")  # the order workers drain them
CRITICAL = "Critical"
# Who may submit at Critical when a Job Type names no roles of its own (Job Type.critical_roles).
CRITICAL_ROLES = ("System Manager", "Dartwing Admin")


def can_transition(current: str | None, new: str) -> bool:
	return new in ALLOWED.get(current, set())
