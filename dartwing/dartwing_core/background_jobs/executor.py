"""Runs one job in a worker: claim it, run its handler under a heartbeat and a deadline, then
settle the outcome (completed, retry later, dead letter, canceled)."""

import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from . import dead_letter, logs, runtime, states, tracing
from .dependencies import release_one_waiting
from .errors import JobCanceled, JobPaused, JobTimedOut, PermanentError, PermissionDenied
from .progress import JobContext
from .retry import PERMANENT, TRANSIENT, RetryPolicy, classify, next_retry_delay
from .timeouts import deadline
from .transitions import JOB, JobRow, transition

if TYPE_CHECKING:
	from .engine import Engine

logger = logging.getLogger("dartwing.jobs")


@dataclass
class Claim:
	"""A job this run owns: claimed Queued -> Running, with what running it needs."""

	job: JobRow
	job_type: dict
	handler: Callable
	attempt: int
	in_flight_limit: int = 0  # the organization's max_in_flight_jobs: settling frees a place


@dataclass
class Failure:
	"""A failed attempt as plain data, so a work-horse can report it to its worker."""

	error_type: str  # retry.TRANSIENT or retry.PERMANENT
	error_message: str
	traceback: str = ""
	timed_out: bool = False

	@classmethod
	def of(cls, exc: BaseException, tb: str = "", rules: tuple[tuple, tuple] = ((), ())) -> "Failure":
		"""`rules`: the handler's (retry_on, give_up_on), which decide before the built-in map."""
		verdict = classify(exc, *rules)
		return cls(verdict, f"{type(exc).__name__}: {exc}", tb, isinstance(exc, JobTimedOut))

	@classmethod
	def of_lost_run(cls, job: dict, seconds: float, how: str) -> "Failure":
		"""An attempt whose process ended without reporting (a horse, a supervised child) after
		running `seconds`: past the job's timeout, a timeout; otherwise a death, `how` saying whose."""
		timeout = int(job["timeout_seconds"] or 0)
		if timeout and seconds >= timeout:
			return cls(TRANSIENT, f"JobTimedOut: exceeded its timeout of {timeout}s", timed_out=True)
		return cls(TRANSIENT, f"WorkHorseDied: {how}")


@dataclass
class Outcome:
	"""How one attempt ended: Completed or Canceled with the fields to save, or a failure."""

	status: str  # states.COMPLETED, CANCELED, PAUSED or FAILED (then `failure` says why)
	message: str = ""
	values: dict = field(default_factory=dict)
	failure: Failure | None = None


def run(job_id: str, queue_job_id: str) -> str:
	"""The function queue messages point at; the worker process has configured the runtime. (A
	supervising worker's horse runs only the handler of the job its worker claimed instead:
	forking_worker.HandoffJob.)"""
	return execute(runtime.current(), job_id, queue_job_id)


def execute(engine: "Engine", job_id: str, queue_job_id: str) -> str:
	"""Claim, run and settle in this process. Returns the status the job ended this run in, or
	states.SKIPPED when the message was stale."""
	with engine.store.session():
		claimed = claim(engine, job_id, queue_job_id)
	if not isinstance(claimed, Claim):
		return claimed
	with _heartbeat(engine, claimed.job):
		outcome = attempt(engine, claimed)
	with engine.store.session():
		return settle(engine, claimed, outcome)


# What a claim reads of the job's organization and type (few columns: the MySQL protocol describes
# every column of every result, which PyMySQL parses in Python).
CLAIM_LINKS = {
	"organization": ("Organization", ["status", "max_in_flight_jobs"]),
	"job_type": ("Job Type", ["handler", "is_paused", *RetryPolicy.JOB_TYPE_FIELDS]),
}


def claim(engine: "Engine", job_id: str, queue_job_id: str) -> Claim | str:
	"""Queued -> Running for this message; or, when the job cannot run, the status it ended in
	instead (SKIPPED for a stale message, Pending for a suspended organization, Dead Letter)."""
	job, linked = engine.store.get_with_links(JOB, job_id, {**CLAIM_LINKS, **engine.access.claim_links})
	if job is None or job["status"] != states.QUEUED or job["queue_job_id"] != queue_job_id:
		logger.info("Job skipped job_id=%s message=%s (no longer queued for it)", job_id, queue_job_id)
		return states.SKIPPED
	org = linked["organization"]
	if org is None:
		return _give_up(engine, job, "Organization not found")
	if org["status"] != "Active":
		transition(
			engine, job, states.PENDING, actor="worker", message=f"Organization {org['status']}; waiting"
		)
		return states.PENDING
	job_type = linked["job_type"] or {}
	if job_type.get("is_paused"):
		# Stays Queued; resuming the job type sends its message again (the scheduler leaves the
		# jobs of a paused type alone meanwhile).
		logger.info("Job skipped job_id=%s (job type %s is paused)", job_id, job["job_type"])
		return states.SKIPPED
	handler = engine.handlers.get(job_type.get("handler", ""))
	if handler is None:
		return _give_up(engine, job, f"No handler registered for job type {job['job_type']!r} in this worker")
	try:
		engine.access.check_run(job, linked)  # the owner may have lost access since submitting
	except PermissionDenied as exc:
		return _give_up(engine, job, f"Permission denied: {exc}")

	now = engine.now()
	attempt_no = job["retry_count"] + 1
	job = transition(
		engine,
		job,
		states.RUNNING,
		actor="worker",
		message=f"Attempt {attempt_no} started",
		values={
			"started_at": now,
			"worker_name": f"{socket.gethostname()}:{os.getpid()}",
			**_lease(engine, now),
		},
	)
	if job is None:
		return states.SKIPPED
	return Claim(job, job_type, handler, attempt_no, int(org.get("max_in_flight_jobs") or 0))


def attempt(engine: "Engine", claimed: Claim) -> Outcome:
	"""Run the handler once, as the job's owner and under its deadline; never raises. In a
	consumer span when tracing, with the run's fields and trace id on every log line."""
	with tracing.consuming(claimed.job, claimed.attempt) as span:
		with logs.run_context(claimed.job, claimed.attempt, tracing.trace_id(span, claimed.job)):
			outcome = _attempt(engine, claimed, span)
		tracing.ended(span, outcome)
		return outcome


def _attempt(engine: "Engine", claimed: Claim, span) -> Outcome:
	job, attempt_no = claimed.job, claimed.attempt
	spec = engine.handlers.spec_for(job["job_type"], claimed.job_type.get("handler", ""))
	ctx = JobContext(
		engine,
		job,
		attempt_no,
		logger,
		declared_steps=spec.steps if spec else (),
		max_failed_items=spec.max_failed_items if spec else 0,
	)
	fields = {"job_id": job["name"], "job_type": job["job_type"], "attempt": attempt_no}
	logger.info(
		"Job started job_id=%s type=%s attempt=%d", job["name"], job["job_type"], attempt_no, extra=fields
	)
	started = time.monotonic()
	try:
		with engine.access.run_as(job["owner_user"]), deadline(int(job["timeout_seconds"] or 0)):
			value = claimed.handler(ctx, **json.loads(job["input_parameters"] or "{}"))
		values = {**_result_values(value), "progress_message": ctx.job.get("progress_message")}
	except (JobCanceled, JobPaused) as exc:
		stopped = states.CANCELED if isinstance(exc, JobCanceled) else states.PAUSED
		_record_step_failure(ctx, f"{stopped}: {exc}", timed_out=False)
		progress = {"progress": ctx.job["progress"], "progress_message": ctx.job.get("progress_message")}
		return Outcome(stopped, f"{stopped} at checkpoint: {exc}", progress)
	except (Exception, JobTimedOut) as exc:
		rules = (spec.retry_on, spec.give_up_on) if spec else ((), ())
		failure = Failure.of(exc, traceback.format_exc(), rules)
		_record_step_failure(ctx, failure.error_message, failure.timed_out)
		tracing.failed(span, exc)
		log_failure(claimed, time.monotonic() - started, failure)
		return Outcome(states.FAILED, failure=failure)
	duration = time.monotonic() - started
	logger.info(
		"Job succeeded job_id=%s type=%s attempt=%d duration=%.3fs",
		job["name"],
		job["job_type"],
		attempt_no,
		duration,
		extra={**fields, "duration": duration},
	)
	return Outcome(states.COMPLETED, f"Completed in {duration:.3f}s", values)


def _record_step_failure(ctx: JobContext, message: str, timed_out: bool) -> None:
	"""The step the attempt failed in, saved after the handler's writes were rolled back; saving
	it must not hide the attempt's own outcome."""
	try:
		ctx.steps.record_failure(message, timed_out)
	except Exception:
		logger.warning("Saving a failed step failed job_id=%s", ctx.job_id, exc_info=True)


def log_failure(claimed: Claim, duration: float, failure: Failure) -> None:
	"""The one "Job failed" line, for an attempt that raised and for a horse that died."""
	job = claimed.job
	fields = {"job_id": job["name"], "job_type": job["job_type"], "attempt": claimed.attempt}
	logger.warning(
		"Job failed job_id=%s type=%s attempt=%d duration=%.3fs error=%s",
		job["name"],
		job["job_type"],
		claimed.attempt,
		duration,
		failure.error_message,
		extra={**fields, "duration": duration},
	)


def settle(engine: "Engine", claimed: Claim, outcome: Outcome) -> str:
	"""Save how the attempt ended: Completed, Canceled, or the retry policy's answer to a failure;
	then, for an organization with an in-flight limit, queue its next job waiting for room."""
	job = claimed.job
	if outcome.status == states.COMPLETED:
		status = _persist(lambda: _finish(engine, job, states.COMPLETED, outcome.message, outcome.values))
	elif outcome.status == states.CANCELED:
		values = {**outcome.values, "canceled_at": engine.now()}
		status = _persist(lambda: _finish(engine, job, states.CANCELED, outcome.message, values))
	elif outcome.status == states.PAUSED:
		values = {**outcome.values, "paused_at": engine.now(), "pause_requested_at": None}
		status = _persist(lambda: _finish(engine, job, states.PAUSED, outcome.message, values))
	else:
		status = _persist(lambda: settle_failure(engine, job, outcome.failure, claimed.job_type))
	if claimed.in_flight_limit:
		try:
			release_one_waiting(engine, job["organization"], actor="worker")
		except Exception:  # the scheduler's release_pending does it at its next pass
			logger.warning("Releasing a waiting job of %s failed", job["organization"], exc_info=True)
	return status


def settle_lost_run(engine: "Engine", job_id: str, message_id: str, how: str) -> str:
	"""The attempt of a process that died running it (a supervised child): a failed attempt now,
	timed out when it ran past the job's timeout, unless the job was settled already (canceled by
	force, rescued). Settled as any attempt, so a limited organization's next job gets its room
	at once."""
	job, linked = engine.store.get_with_links(JOB, job_id, CLAIM_LINKS)
	if job is None or job["status"] != states.RUNNING or job["queue_job_id"] != message_id:
		return states.SKIPPED
	ran = (engine.now() - job["started_at"]).total_seconds() if job["started_at"] else 0.0
	failure = Failure.of_lost_run(job, ran, how)
	org = linked["organization"] or {}
	claimed = Claim(
		job, linked["job_type"] or {}, None, job["retry_count"] + 1, int(org.get("max_in_flight_jobs") or 0)
	)
	log_failure(claimed, ran, failure)
	return settle(engine, claimed, Outcome(states.FAILED, failure=failure))


def _persist(settle, attempts: int = 4):
	"""Writing an outcome must survive a deadlock or a locked database: otherwise a job that
	succeeded would wait for its lease to lapse and run again. Transient errors retry with backoff."""
	for try_no in range(1, attempts + 1):
		try:
			return settle()
		except Exception as exc:
			if try_no == attempts or classify(exc) != TRANSIENT:
				raise
			logger.warning("Saving an outcome failed (%s); retrying", exc)
			time.sleep(0.2 * 2**try_no)


def _result_values(value) -> dict:
	values = {"progress": 100, "error_type": None, "error_message": None, "error_traceback": None}
	if value is None:
		return values
	if isinstance(value, str):
		return {**values, "output_reference": value}
	if isinstance(value, dict):
		try:
			encoded = json.dumps(value, allow_nan=False, default=None)
		except (TypeError, ValueError) as exc:
			raise PermanentError(f"handler returned a dict that is not JSON-serializable: {exc}") from None
		reference = value.get("output_reference")
		return {
			**values,
			"result": encoded,
			"output_reference": None if reference is None else str(reference),
		}
	raise PermanentError(
		f"handler returned {type(value).__name__}; return None, a string or a JSON-able dict"
	)


def _finish(engine: "Engine", job: dict, status: str, message: str, values: dict) -> str:
	"""Settle this run's own job; retry the compare-and-set when only a note (a cancel request)
	moved the row on, and give up when another run owns the job now."""
	values = {**values, "lease_expires_at": None}  # completed_at: set by every ending transition
	# The first try uses the row as this run left it; a cancel or pause request (a note) bumps the
	# transition count, so on a lost compare-and-set re-read and try again while the run owns the job.
	row = job if status == states.COMPLETED else None
	for _ in range(5):
		if row is None:
			row = engine.store.get(JOB, job["name"])
			if row is None or row["status"] != states.RUNNING or row["queue_job_id"] != job["queue_job_id"]:
				return states.SKIPPED
		if status == states.CANCELED:
			values["canceled_by"] = row.get("canceled_by")
		if status == states.PAUSED:
			values["paused_by"] = row.get("paused_by") or states.TYPE_PAUSE
		done = transition(engine, row, status, actor="worker", message=message, values=values)
		if done:
			return status
		row = None
	return states.SKIPPED


def settle_failure(
	engine: "Engine", job: dict, failure: Failure, job_type: dict, actor: str = "worker"
) -> str:
	"""Retry later with backoff, or dead-letter: the one rule for every failed attempt."""
	error_type, error_message, tb = failure.error_type, failure.error_message, failure.traceback
	policy = RetryPolicy.from_job_type(job_type or {"max_retries": 0}, job["max_retries"])
	delay = next_retry_delay(policy, job["retry_count"], error_type)
	for _ in range(5):
		row = engine.store.get(JOB, job["name"])
		if row is None or row["status"] != states.RUNNING or row["queue_job_id"] != job["queue_job_id"]:
			return states.SKIPPED
		if row.get("cancel_requested_at"):
			# The user asked to stop this job: a failed attempt ends it instead of being retried.
			done = transition(
				engine,
				row,
				states.CANCELED,
				actor=actor,
				message=f"Canceled as requested; the attempt failed: {error_message}",
				values={
					"canceled_at": engine.now(),
					"error_type": error_type,
					"error_message": error_message[:10000],
					"error_traceback": tb or None,
					"lease_expires_at": None,
				},
			)
			if done:
				return states.CANCELED
			continue
		if delay is None:
			reason = (
				error_message
				if error_type == PERMANENT
				else (f"retries exhausted ({row['retry_count']}/{policy.max_retries}): {error_message}")
			)
			if dead_letter.send(
				engine, row, error_type=error_type, error_message=reason, traceback=tb, actor=actor
			):
				return states.DEAD_LETTER
			continue
		status = states.TIMED_OUT if failure.timed_out else states.FAILED
		retry_values = {
			"error_type": error_type,
			"error_message": error_message[:10000],
			"error_traceback": tb or None,
			"retry_count": row["retry_count"] + 1,
			"lease_expires_at": None,
		}
		if row.get("pause_requested_at"):
			# A pause was asked for: the job waits Paused instead of for its retry; resume queues it.
			done = transition(
				engine,
				row,
				states.PAUSED,
				actor=actor,
				message=f"Paused as requested; the attempt failed: {error_message}",
				values={**retry_values, "paused_at": engine.now(), "pause_requested_at": None},
			)
			if done:
				return states.PAUSED
			continue
		next_at = engine.now() + timedelta(seconds=delay)
		done = transition(
			engine,
			row,
			status,
			actor=actor,
			message=f"{error_message}; retry {row['retry_count'] + 1}/{policy.max_retries} in {delay:.0f}s",
			values={**retry_values, "next_retry_at": next_at},
		)
		if done:
			return status
	return states.SKIPPED


def _give_up(engine: "Engine", job: dict, reason: str) -> str:
	done = dead_letter.send(engine, job, error_type=PERMANENT, error_message=reason, actor="worker")
	return states.DEAD_LETTER if done else states.SKIPPED


def _lease(engine: "Engine", now) -> dict:
	"""A heartbeat at `now` and the lease it buys: what a claim and every heartbeat write."""
	return {"heartbeat_at": now, "lease_expires_at": now + timedelta(seconds=engine.settings.lease_seconds)}


def extend_lease(engine: "Engine", job: dict) -> bool:
	"""Tell the scheduler this run is alive, so it can tell a slow job from a dead one."""
	return engine.store.update_apart(
		JOB,
		job["name"],
		_lease(engine, engine.now()),
		expect=[("status", "=", states.RUNNING), ("queue_job_id", "=", job["queue_job_id"])],
	)


@contextmanager
def _heartbeat(engine: "Engine", job: dict) -> Iterator[None]:
	"""Extend the job's lease from a thread while the handler runs in this process."""
	stop = threading.Event()

	def beat():
		while not stop.wait(engine.settings.lease_seconds / 3):
			try:
				extended = extend_lease(engine, job)
			except Exception:
				logger.warning("Heartbeat failed job_id=%s", job["name"], exc_info=True)
				continue
			if not extended and runtime.lost_lease_exit_code is not None:
				logger.warning("Job %s is no longer this run's; its process ends", job["name"])
				os._exit(runtime.lost_lease_exit_code)

	thread = threading.Thread(target=beat, name=f"heartbeat-{job['name']}", daemon=True)
	thread.start()
	try:
		yield
	finally:
		stop.set()
		thread.join()
