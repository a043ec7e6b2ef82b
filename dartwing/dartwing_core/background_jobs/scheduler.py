"""Periodic work that puts the database's truth back into the queue. Every task runs under a
distributed lock, works in batches, and relies on compare-and-set so a lost race is harmless."""

import logging
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from . import states
from .dependencies import Room, settle_pending
from .executor import Failure, settle_failure
from .locks import distributed_lock
from .schedule_tick import run_schedules
from .transitions import JOB, Move, transition, transition_all

if TYPE_CHECKING:
	from .engine import Engine

logger = logging.getLogger("dartwing.jobs")


# Transitions a scheduler task commits together: one commit for many rows, but no transaction
# holding more row locks, for longer, than a worker's claim of one of them should wait.
COMMIT_EVERY = 100


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
	chosen = [(job, f"Retry {job['retry_count']}/{job['max_retries']}") for job in with_room(engine, due)]
	return sum(
		len(engine.requeue_all(chosen[i : i + COMMIT_EVERY], actor="scheduler"))
		for i in range(0, len(chosen), COMMIT_EVERY)
	)


def with_room(engine: "Engine", jobs: list[dict]) -> list[dict]:
	"""The jobs, in order, that their organizations have room in flight for; the others wait
	(still due) for a later tick. The batch's organizations are read at once, and those already
	chosen count as in flight: they will be when the batch commits."""
	if not jobs:
		return []
	orgs = {
		org["name"]: org
		for org in engine.store.get_all(
			"Organization", [("name", "in", sorted({job["organization"] for job in jobs}))]
		)
	}
	room, going, chosen = Room(engine), Counter(), []
	for job in jobs:
		if room.known_full(job["organization"]):
			continue
		org = orgs.get(job["organization"])
		if org is not None and not room.has_room(org, adding=going[org["name"]]):
			continue
		going[job["organization"]] += 1
		chosen.append(job)
	return chosen


@distributed_lock("queue_scheduled", ttl=120)
def queue_scheduled(engine: "Engine") -> int:
	"""Scheduled jobs whose run_at has come are queued (as the organization's in-flight limit
	allows), or become Pending while the job they depend on has not completed. One indexed
	read (status, run_at) of a page, transitions committed together, one dispatch per chunk."""
	due = engine.store.get_all(
		JOB,
		[("status", "=", states.SCHEDULED), ("run_at", "<=", engine.now())],
		order_by="run_at asc, name asc",
		limit=engine.settings.batch_size,
	)
	waited_on = sorted({job["depends_on"] for job in due if job.get("depends_on")})
	completed = {
		row["name"]
		for row in engine.store.get_all(JOB, [("name", "in", waited_on)], ["name", "status"])
		if row["status"] == states.COMPLETED
	}
	waiting = [job for job in due if job.get("depends_on") and job["depends_on"] not in completed]
	ready = with_room(
		engine, [job for job in due if not job.get("depends_on") or job["depends_on"] in completed]
	)
	moves: list[Move] = [
		{
			"job": job,
			"to_status": states.PENDING,
			"actor": "scheduler",
			"message": "Due; waiting for its parent",
		}
		for job in waiting
	] + [
		{
			"job": job,
			"to_status": states.QUEUED,
			"actor": "scheduler",
			"message": "Due",
			"values": engine.requeued_values(job),
		}
		for job in ready
	]
	moved = 0
	for i in range(0, len(moves), COMMIT_EVERY):
		done = [job for job in transition_all(engine, moves[i : i + COMMIT_EVERY]) if job]
		engine.dispatch_all([job for job in done if job["status"] == states.QUEUED])
		moved += len(done)
	return moved


@distributed_lock("release_pending", ttl=120)
def release_pending(engine: "Engine") -> int:
	"""Pending jobs whose parent completed (or whose organization is active again, or has room
	in flight) are queued; those whose parent ended otherwise are canceled. A backstop: a parent's
	end settles its children at once, and a job's end queues its organization's oldest job waiting
	for room. So it scans (backstop_scan), not every Pending job every tick."""
	room = Room(engine)  # a full organization's other jobs wait too
	return backstop_scan(
		engine,
		"release_pending",
		[("status", "=", states.PENDING)],
		lambda page: _release(engine, room, page),
		["depends_on", "organization"],
	)


def _release(engine: "Engine", room: Room, page: list[dict]) -> int:
	# The page's parents in one read, not one each, and only the jobs that may move read whole:
	# most Pending jobs wait on a parent still running.
	waited_on = sorted({job["depends_on"] for job in page if job["depends_on"]})
	parents = {
		r["name"]: r for r in engine.store.get_all(JOB, [("name", "in", waited_on)], ["name", "status"])
	}
	movable = [
		job["name"]
		for job in page
		if not room.known_full(job["organization"])
		and (not job["depends_on"] or parents.get(job["depends_on"], {}).get("status") in _PARENT_ENDED)
	]
	whole = (
		{
			row["name"]: row
			for row in engine.store.get_all(JOB, [("name", "in", movable), ("status", "=", states.PENDING)])
		}
		if movable
		else {}
	)
	return sum(
		1
		for name in movable
		if name in whole
		and not room.known_full(whole[name]["organization"])
		and settle_pending(engine, whole[name], parents.get(whole[name]["depends_on"]), room=room)
	)


# A Pending job's parent in these statuses (or purged) lets it move: queued, or canceled with it.
_PARENT_ENDED = (None, *states.TERMINAL)


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
	The stale rows are scanned (backstop_scan) where the last tick stopped, starting over after the
	last: a backlog of jobs legitimately waiting must not hide a lost one, nor make every tick pay
	for asking about all of it."""
	cutoff = engine.now() - timedelta(seconds=engine.settings.requeue_grace_seconds)
	stale = [("status", "=", states.QUEUED), ("queued_at", "<", cutoff)]
	paused = [row["name"] for row in engine.store.get_all("Job Type", [("is_paused", "=", 1)], ["name"])]
	if paused:  # their messages were skipped on purpose: resuming the type sends them again
		stale.append(("job_type", "not in", paused))
	# The columns the check needs only: the few lost rows are read whole afterwards.
	return backstop_scan(
		engine,
		"redispatch_lost",
		stale,
		lambda page: _send_lost(engine, page),
		["queue_job_id", "transition_count"],
	)


def _send_lost(engine: "Engine", page: list[dict]) -> int:
	# Redis asked about the whole page at once, the lost ones moved in few commits and sent in one
	# go: a page costs a few round trips, not one or more per job.
	waiting = engine.queue.waiting([job["queue_job_id"] for job in page if job["queue_job_id"]])
	lost = {job["name"]: job["transition_count"] for job in page if job["queue_job_id"] not in waiting}
	names, sent = list(lost), 0
	for i in range(0, len(names), COMMIT_EVERY):
		rows = engine.store.get_all(JOB, [("name", "in", names[i : i + COMMIT_EVERY])])
		moves: list[Move] = [
			{
				"job": job,
				"to_status": states.QUEUED,
				"actor": "scheduler",
				"message": "Message missing from queue; sent again",
				"values": {"queued_at": engine.now()},
			}
			for job in rows
			# Unchanged since the page was read: one a worker claimed, or another process sent
			# again, meanwhile is not lost (the compare-and-set then holds the page's reading).
			if job["transition_count"] == lost[job["name"]]
		]
		done = [job for job in transition_all(engine, moves) if job]
		engine.dispatch_all(done)
		sent += len(done)
	return sent


# How long a task's cursor outlives the last tick that moved it.
CURSOR_TTL = 3600


# Rows a backstop scan reads a page: a healthy backlog costs one such page a tick.
BACKSTOP_PAGE = 100


def backstop_scan(engine: "Engine", task: str, filters: list, handle, fields: Sequence[str] = ()) -> int:
	"""Pages of the rows matching `filters` (next_page) go to `handle`, which returns how many of
	them it moved. One page a tick while pages find nothing to do: a backlog of jobs rightly
	waiting costs a tick one page of BACKSTOP_PAGE, and is gone through in N / BACKSTOP_PAGE ticks.
	A page that found work is followed by the next, up to batch_size rows a tick, so a recovery
	(Redis emptied, an organization resumed) goes as fast as whole batches would."""
	size, read, moved = min(BACKSTOP_PAGE, engine.settings.batch_size), 0, 0
	while read < engine.settings.batch_size:
		page = next_page(engine, task, filters, fields, size)
		read += len(page)
		found = handle(page)
		moved += found
		if not found or len(page) < size:  # nothing to do here, or the end: the next tick goes on
			return moved
	return moved


def next_page(engine: "Engine", task: str, filters: list, fields: Sequence[str], limit: int) -> list[dict]:
	"""Up to `limit` rows matching `filters` (a status first), in name order, after the last row the
	task's previous page held; after the last page the next starts over. Names are time-ordered,
	so the oldest come first, and the (status, name) index reads just the page: keyset paging,
	which rows leaving the filters meanwhile do not shift. The cursor is in Redis, shared by
	schedulers. Rows carry their name and `fields`."""
	cursor_key = f"{engine.settings.queue_prefix}:{task}:after"
	after = engine.lock_client.get(cursor_key)
	if after:
		filters = [*filters, ("name", ">", after.decode() if isinstance(after, bytes) else after)]
	page = engine.store.get_all(JOB, filters, ["name", *fields], order_by="name asc", limit=limit)
	if len(page) < limit:
		engine.lock_client.delete(cursor_key)  # the end: the next tick starts over
	else:
		engine.lock_client.set(cursor_key, page[-1]["name"], ex=CURSOR_TTL)
	return page


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


TASKS = (
	rescue_orphans,
	stop_canceled,
	run_schedules,
	queue_scheduled,
	requeue_due_retries,
	release_pending,
	redispatch_lost,
)


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
