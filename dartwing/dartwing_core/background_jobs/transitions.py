"""Every status change: one transaction holding a compare-and-set on the job and its hash-chained
Job Execution Log row. A transition that loses a race changes nothing and returns None."""

import secrets
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from . import audit, states
from .errors import InvalidState
from .ports import Change

if TYPE_CHECKING:
	from .engine import Engine

JOB = "Background Job"
LOG = "Job Execution Log"
STEP = "Background Job Step"  # a child table of JOB (steps.py)
ITEM = "Background Job Item"  # a job's items, a doctype of their own (items.py)


def new_name(at: float | None = None) -> str:
	"""Time-ordered names: 11 hex digits of Unix milliseconds (`at`, default now), then 36 random
	bits. New rows land on the primary key's newest pages, which the database keeps cached, and a
	job's rows and log rows sit near others of its time, so a transition, an insert and a purge
	batch read few pages of a table many times the cache; random names scattered each over all of
	it. 36 random bits per millisecond keep collisions out of reach (1,000 names in one millisecond
	collide once in 140,000 such bursts); Frappe's `autoname: hash` has 40 bits in all."""
	millis = int((time.time() if at is None else at) * 1000)
	return f"{millis:011x}{secrets.randbits(36):09x}"


class JobRow(TypedDict, total=False):
	"""A Background Job row as the stores return it (Frappe's standard columns too): the one
	shape the engine passes around. Datetimes are naive, in the site's (or UTC) wall clock."""

	name: str
	creation: datetime
	modified: datetime
	owner: str
	modified_by: str
	job_type: str
	organization: str
	owner_user: str
	triggered_by: str
	status: str
	priority: str
	input_parameters: str
	job_hash: str
	active_hash: str | None
	depends_on: str | None
	queue_job_id: str | None
	transition_count: int
	chain_head: str | None
	retry_count: int
	max_retries: int
	timeout_seconds: int
	progress: float
	progress_message: str | None
	result: str | None
	output_reference: str | None
	error_type: str | None
	error_message: str | None
	error_traceback: str | None
	worker_name: str | None
	queued_at: datetime | None
	started_at: datetime | None
	completed_at: datetime | None
	heartbeat_at: datetime | None
	lease_expires_at: datetime | None
	next_retry_at: datetime | None
	cancel_requested_at: datetime | None
	canceled_at: datetime | None
	canceled_by: str | None
	traceparent: str | None  # W3C trace context of the submit (tracing.py)


def log_row(job: JobRow, to_status: str, now: datetime, actor: str, message: str, retry_count: int) -> dict:
	row = {
		"name": new_name(),
		"background_job": job["name"],
		"sequence": (job.get("transition_count") or 0) + 1,
		"from_status": job.get("status"),
		"to_status": to_status,
		"timestamp": now,
		"actor": actor,
		"message": message[:1000],
		"retry_attempt": retry_count,
		"previous_hash": job.get("chain_head") or audit.GENESIS,
		"owner": actor,
		"creation": now,
		"modified": now,
	}
	row["entry_hash"] = audit.entry_hash(row["previous_hash"], row)
	return row


class Move(TypedDict, total=False):
	"""One transition of a batch: transition()'s arguments as data."""

	job: JobRow
	to_status: str
	actor: str
	message: str
	values: dict | None


def transition(
	engine: "Engine",
	job: JobRow,
	to_status: str,
	*,
	actor: str,
	message: str = "",
	values: dict | None = None,
) -> JobRow | None:
	"""Move `job` (as last read) to `to_status`; to_status == status records a note without a change."""
	written = _apply(engine, job, *_plan(engine, job, to_status, actor, message, values))
	if written is None:
		return None
	return _after_commit(engine, job, *written, actor)


def note_run(engine: "Engine", job: JobRow, message: str, values: dict | None = None) -> bool:
	"""A history row (with `values`) for the run that owns `job`, which stays Running: a step's
	completion, say. The run's own dict is brought up to date, so its settle compares against
	the new row. A cancel request's note may have moved the row on: read it again and retry.
	False when the run no longer owns the job."""
	row = job
	for _ in range(5):
		done = transition(engine, row, states.RUNNING, actor="worker", message=message, values=values)
		if done:
			job.update({k: done[k] for k in ("transition_count", "chain_head", "modified", "modified_by")})
			job.update(values or {})
			return True
		row = engine.store.get(JOB, job["name"])
		if row is None or row["status"] != states.RUNNING or row["queue_job_id"] != job["queue_job_id"]:
			return False
	return False


def transition_all(engine: "Engine", moves: Sequence[Move]) -> list[JobRow | None]:
	"""Many transitions in one transaction, for the scheduler's batches: one commit instead of one
	each, and on MariaDB one round trip for all their statements. Each is still its own
	compare-and-set and log row; one that loses its race changes nothing and is None in the
	answer. An error rolls back the whole batch. Events and the children's release follow the
	commit, as they follow a single transition's."""
	planned = [
		_plan(engine, m["job"], m["to_status"], m["actor"], m.get("message", ""), m.get("values"))
		for m in moves
	]
	if any(ended for _, _, ended in planned):
		# A job that ends reads its children in its own transaction (transition does that).
		raise ValueError("transition_all moves jobs that do not end; end each with transition()")
	won = engine.store.compare_and_set_many(
		JOB,
		[
			Change(m["job"]["name"], changes, _expect(m["job"]), (LOG, log))
			for m, (changes, log, _) in zip(moves, planned, strict=True)
		],
	)
	updated = [
		{**m["job"], **changes} if ok else None
		for m, (changes, _, _), ok in zip(moves, planned, won, strict=True)
	]
	# No job ended, so no children to release: what follows the commit is the status events (in
	# one round trip) and the on_transition observers, as after a single transition.
	moved = [
		(m["job"], u) for m, u in zip(moves, updated, strict=True) if u and u["status"] != m["job"]["status"]
	]
	engine.publish_all_status([after for _, after in moved])
	for before, after in moved:
		engine.transitioned(before, after)
	return updated


def _plan(
	engine: "Engine", job: JobRow, to_status: str, actor: str, message: str, values: dict | None
) -> tuple[dict, dict, bool]:
	"""The row's changes, its log row, and whether the job ends."""
	if to_status != job["status"] and not states.can_transition(job["status"], to_status):
		raise InvalidState(f"job {job['name']} is {job['status']}; it cannot become {to_status}")
	now = engine.now()
	changes = dict(values or {})
	log = log_row(job, to_status, now, actor, message, changes.get("retry_count", job["retry_count"]))
	changes.update(
		status=to_status,
		transition_count=log["sequence"],
		chain_head=log["entry_hash"],
		modified=now,
		modified_by=actor,
	)
	if to_status in states.TERMINAL:
		changes["active_hash"] = None
		if to_status != job["status"]:
			# When it ended, whichever way: metrics count ended jobs by it, off the covering indexes.
			changes.setdefault("completed_at", now)
	return changes, log, to_status in states.TERMINAL and to_status != job["status"]


def _expect(job: JobRow) -> list:
	"""The compare-and-set: the job is still as it was read."""
	return [("transition_count", "=", job["transition_count"]), ("status", "=", job["status"])]


def _apply(
	engine: "Engine", job: JobRow, changes: dict, log: dict, ended: bool
) -> tuple[JobRow, list] | None:
	# One transaction: the compare-and-set, its log row and, when the job ended, the names of the
	# Pending jobs waiting on it (names only: most jobs have none, and an empty answer costs
	# little). Read in the transaction already open rather than in one of its own after it.
	children = engine.store.compare_and_set(
		JOB,
		job["name"],
		changes,
		_expect(job),
		record=(LOG, log),
		then_read=(JOB, pending_children(job["name"]), ["name"]) if ended else None,
	)
	if children is None:
		return None
	return {**job, **changes}, children


def _after_commit(engine: "Engine", job: JobRow, updated: JobRow, children: list, actor: str) -> JobRow:
	"""What a committed transition sets off: its event, and the release of its Pending children."""
	if updated["status"] != job["status"]:
		engine.publish_status(updated)
		engine.transitioned(job, updated)
	if children:  # they move as soon as their parent ends
		from .dependencies import settle_children  # imports this module

		settle_children(engine, updated, [c["name"] for c in children], actor)
	return updated


def pending_children(job_id: str) -> list:
	"""Filters for the jobs waiting on `job_id` (depends_on)."""
	return [("depends_on", "=", job_id), ("status", "=", states.PENDING)]
