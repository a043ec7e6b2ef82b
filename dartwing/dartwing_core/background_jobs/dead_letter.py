"""The one place where jobs are handed to the dead-letter queue, and where admins read it."""

import logging
from typing import TYPE_CHECKING

from . import states
from .transitions import JOB, transition

if TYPE_CHECKING:
	from .engine import Engine

logger = logging.getLogger("dartwing.jobs")


def send(
	engine, job: dict, *, error_type: str, error_message: str, traceback: str = "", actor: str
) -> dict | None:
	"""Park a job for review: a permanent error, exhausted retries, or a job that cannot run here."""
	done = transition(
		engine,
		job,
		states.DEAD_LETTER,
		actor=actor,
		message=f"Dead letter: {error_message}",
		values={
			"error_type": error_type,
			"error_message": error_message[:10000],
			"error_traceback": traceback or None,
			"next_retry_at": None,
			"lease_expires_at": None,
			"completed_at": engine.now(),
		},
	)
	if done:
		logger.warning(
			"Job dead-lettered job_id=%s type=%s error=%s", job["name"], job["job_type"], error_message
		)
	return done


def list_dead_letters(engine: "Engine", organization: str | None = None, limit: int = 100) -> list[dict]:
	filters = [("status", "=", states.DEAD_LETTER)]
	if organization:
		filters.append(("organization", "=", organization))
	rows = engine.store.get_all(JOB, filters, order_by="modified desc", limit=limit)
	return [engine.to_api(r) for r in rows]
