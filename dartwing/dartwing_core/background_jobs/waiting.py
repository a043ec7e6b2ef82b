"""Waiting for a job's outcome from outside the workers: listen to the job's events, and read the
database only once the subscription is in place (what ended before it is found there) and after
long silences (pub/sub drops what is published while a connection is down)."""

import math
import time
from contextlib import closing
from typing import TYPE_CHECKING

from . import states
from .errors import JobFailed, NotFound, ValidationError
from .transitions import JOB

if TYPE_CHECKING:
	from .engine import Engine

RECHECK_SECONDS = 10.0  # silence after which the row is read again, in case an event was lost
LISTEN_TICK = 0.25  # how often a silent subscription wakes to check the deadline (no database read)


def check_timeout(timeout) -> float | None:
	"""None (wait as long as it takes) or a positive, finite number of seconds."""
	if timeout is None:
		return None
	if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout):
		raise ValidationError("timeout", f"must be a number of seconds, not {timeout!r}")
	if timeout <= 0:
		raise ValidationError("timeout", f"must be more than 0 seconds, not {timeout!r}")
	return float(timeout)


def outcome(job: dict):
	"""What a finished job gives its waiter: what the handler returned (the stored `result` dict,
	else the `output_reference` string, else None); JobFailed for Dead Letter and Canceled."""
	if job["status"] != states.COMPLETED:
		raise JobFailed(job)
	return job["result"] if job.get("result") is not None else job.get("output_reference")


def _read(engine: "Engine", job_id: str) -> dict:
	"""The job as the API shows it, as last committed (not a snapshot the caller's transaction
	may hold: on Frappe, a web request's)."""
	row = engine.store.get(JOB, job_id, latest=True) if isinstance(job_id, str) and job_id else None
	if row is None:
		raise NotFound(f"job {job_id!r} not found")
	return engine.to_api(row)


def wait(engine: "Engine", job_id: str, timeout: float | None = None):
	"""Block until the job is Completed (its result), Dead Letter or Canceled (JobFailed), or
	`timeout` seconds pass (TimeoutError). Failed and Timed Out jobs are waiting for a retry:
	waiting goes on through them."""
	timeout = check_timeout(timeout)
	job = _read(engine, job_id)  # NotFound for an unknown id, before subscribing
	if job["status"] in states.TERMINAL:
		return outcome(job)
	deadline = None if timeout is None else time.monotonic() + timeout
	last_read = None  # none yet since the subscription was confirmed
	with closing(engine.events.subscribe(job_id=job_id, idle=LISTEN_TICK)) as stream:
		for event in stream:
			now = time.monotonic()
			if event is None:
				# The first None follows the subscription's confirmation: anything that ends the
				# job from now on is heard, and anything before is in the row.
				if last_read is None or now - last_read >= RECHECK_SECONDS:
					job, last_read = _read(engine, job_id), now
			elif event.get("event") == "job_status_changed" and event.get("job_id") == job_id:
				job, last_read = event, now
			if job["status"] in states.TERMINAL:
				return outcome(job)
			if deadline is not None and now >= deadline:
				raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout:g}s")
	raise RuntimeError("the event subscription ended")  # subscriptions never end on their own
