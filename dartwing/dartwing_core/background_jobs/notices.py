"""When a job's owner should hear that it ended, without watching it: the rule; a backend
delivers it (on Frappe, a Notification Log: the desk's bell)."""

from . import states
from .settings import Settings
from .transitions import JobRow

DEAD_LETTER = "dead_letter"
LONG_COMPLETED = "long_completed"


def owner_notice(job: JobRow, settings: Settings) -> str | None:
	"""DEAD_LETTER for a job that ended in Dead Letter; LONG_COMPLETED for one that completed
	after its last attempt ran `notify_after_seconds` or more (0: never); None otherwise."""
	if job["status"] == states.DEAD_LETTER:
		return DEAD_LETTER
	if job["status"] != states.COMPLETED or not settings.notify_after_seconds:
		return None
	if run_seconds(job) >= settings.notify_after_seconds:
		return LONG_COMPLETED
	return None


def run_seconds(job: JobRow) -> float:
	"""How long the job's last attempt ran, from its start to its completion (0 when unknown)."""
	started, completed = job.get("started_at"), job.get("completed_at")
	if not started or not completed:
		return 0.0
	return (completed - started).total_seconds()
