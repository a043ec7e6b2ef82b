"""Periodic work that puts the database's truth back into the queue. Every task runs under a
distributed lock, works in batches, and relies on compare-and-set so a lost race is harmless."""

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from . import states
from .dependencies import Room, settle_pending
from .executor import Failure, settle_failure
from .locks import distributed_lock
from .transitions import JOB, transition

if TYPE_CHECKING:
	from .engine import Engine

logger = logging.getLogger("dartwing.jobs")


@distributed_lock("requeue_due_retries", ttl=120)
def requeue_due_retries(engine: "Engine") -> int:
	"""Failed / Timed Out jobs whose next_retry_at has come go back to the queue; a job of an
	organization at its in-flight limit waits (still due) until the organization has room."""
	due = engine.store.get_all(
		JOB,
		[("status", "in", states.WAITING_RETRY), ("next_retry_at", "<=", engine.now())],
		order_by="next_retry_at asc",
		limit=engine.settings.batch_size,
	)
	moved, room = 0, Room(engine)
	for job in due:
		if room.known_full(job["organization"]):
			continue
		org = engine.store.get("Organization", job["organization"])
		if org is not None and not room.has_room(org):
			continue
		if engine.requeue(job, actor="scheduler", message=f"Retry {job['retry_count']}/{job['max_retries']}"):
			moved += 1
	return moved


@distributed_lock("release_pending", ttl=120)
def release_pending(engine: "Engine") -> int:
	"""Pending jobs whose parent completed (or whose organization is active again, or has room
	in flight) are queued; those whose parent ended otherwise are canceled."""
	moved, offset, batch = 0, 0, engine.settings.batch_size
	room = Room(engine)  # a full organization's other jobs wait too
	while True:
		page = engine.store.get_all(
			JOB, [("status", "=", states.PENDING)], order_by="creation asc", limit=batch, offset=offset
		)
		# The page's parents in one read, not one each: most Pending jobs wait on a parent still
		# running, and a backlog of thousands would cost as many round trips every pass.
		waited_on = sorted({job["depends_on"] for job in page if job.get("depends_on")})
		parents = {
			r["name"]: r for r in engine.store.get_all(JOB, [("name", "in", waited_on)], ["name", "status"])
		}
		settled = sum(
			1
			for job in page
			if not room.known_full(job["organization"])
			and settle_pending(engine, job, parents.get(job.get("depends_on")), room=room)
		)
		moved += settled
		offset += len(page) - settled
		if len(page) < batch:
			return moved


@distributed_lock("rescue_orphans", ttl=120)
def rescue_orphans(engine: "Engine") -> int:
	"""Running jobs whose heartbeat lapsed lost their worker: count the attempt as failed."""
	lapsed = engine.store.get_all(
		JOB,
		[("status", "=", states.RUNNING), ("lease_expires_at", "<", engine.now())],
		limit=engine.settings.batch_size,
	)
	for job in lapsed:
		job_type = engine.store.get("Job Type", job["job_type"]) or {}
		error = ConnectionError(f"worker {job.get('worker_name')} stopped sending heartbeats")
		settle_failure(engine, job, Failure.of(error), job_type, actor="scheduler")
		engine.queue.stop(job["queue_job_id"])  # in case the worker is alive but wedged
	return len(lapsed)


@distributed_lock("redispatch_lost", ttl=120)
def redispatch_lost(engine: "Engine") -> int:
	"""Queued jobs whose message is gone from Redis (flushed, evicted, never sent) are sent again.
	Pages through every stale row: a backlog of jobs legitimately waiting must not hide a lost one."""
	cutoff = engine.now() - timedelta(seconds=engine.settings.requeue_grace_seconds)
	sent, offset, batch = 0, 0, engine.settings.batch_size
	while True:
		page = engine.store.get_all(
			JOB,
			[("status", "=", states.QUEUED), ("queued_at", "<", cutoff)],
			order_by="queued_at asc, name asc",
			limit=batch,
			offset=offset,
		)
		moved = 0
		for job in page:
			if engine.queue.is_waiting(job["queue_job_id"]):
				continue
			done = transition(
				engine,
				job,
				states.QUEUED,
				actor="scheduler",
				message="Message missing from queue; sent again",
				values={"queued_at": engine.now()},
			)
			if done:
				engine.dispatch(done)
				moved += 1
		sent += moved
		offset += len(page) - moved  # re-sent rows leave the stale set (their queued_at is new)
		if len(page) < batch:
			return sent


@distributed_lock("stop_canceled", ttl=120)
def stop_canceled(engine: "Engine") -> int:
	"""Running jobs that ignored a cancel request past the grace period are killed."""
	cutoff = engine.now() - timedelta(seconds=engine.settings.cancel_grace_seconds)
	overdue = engine.store.get_all(
		JOB,
		[("status", "=", states.RUNNING), ("cancel_requested_at", "<", cutoff)],
		limit=engine.settings.batch_size,
	)
	stopped = 0
	for job in overdue:
		# Canceled first, then the kill: the worker settles a killed horse itself, and must find
		# the job already Canceled rather than count the kill as a failed attempt.
		done = transition(
			engine,
			job,
			states.CANCELED,
			actor="scheduler",
			message=f"Stopped: no checkpoint within {engine.settings.cancel_grace_seconds:.0f}s of the cancel request",
			values={"canceled_at": engine.now(), "lease_expires_at": None},
		)
		if done:
			stopped += 1
			try:
				engine.queue.stop(job["queue_job_id"])
			except Exception:  # the worker kills the horse itself when the lease no longer extends
				logger.warning("Stopping job %s failed", job["name"], exc_info=True)
	return stopped


TASKS = (rescue_orphans, stop_canceled, requeue_due_retries, release_pending, redispatch_lost)


def tick(engine: "Engine") -> dict:
	"""One pass of every task; what each did (None: another scheduler held its lock)."""
	report = {}
	for task in TASKS:
		try:
			report[task.__name__] = task(engine)
		except Exception:
			logger.exception("Scheduler task %s failed", task.__name__)
			report[task.__name__] = "error"
	return report


def run_forever(engine: "Engine", interval: float | None = None, should_stop=lambda: False) -> None:
	from .cleanup import purge_daily

	interval = interval or engine.settings.scheduler_interval
	while not should_stop():
		started = time.monotonic()
		report = tick(engine)
		# Daily retention, and backend upkeep (SQLite's WAL checkpoint) where the store has it.
		for upkeep in (lambda: purge_daily(engine), getattr(engine.store, "maintain", None)):
			try:
				upkeep and upkeep()
			except Exception:
				logger.exception("Scheduler upkeep failed")
		if any(report.values()):
			logger.info("Scheduler tick %s", {k: v for k, v in report.items() if v})
		time.sleep(max(0.0, interval - (time.monotonic() - started)))
