"""Worker processes for the standalone backend: RQ workers that drain the priority queues in order.

The default runs jobs in long-lived children that serve many jobs each (prefork.py); with
`fork_per_job`, each worker forks a work-horse per job, as RQ and Frappe's bench workers do
(forking_worker.py), for handlers that need a clean process per job."""

import gc
import logging
import multiprocessing
import os
import signal
from typing import TYPE_CHECKING

from . import runtime, tracing
from .backends.rq_queue import PriorityQueue
from .executor import execute, settle_lost_run
from .forking_worker import _our_message, _prctl
from .prefork import InProcessWorker, Running, Slot, supervise

if TYPE_CHECKING:
	from .engine import Engine

logger = logging.getLogger("dartwing.jobs")


class WarmWorker(InProcessWorker):
	"""A supervised child's RQ worker: the engine's messages run in this process, with the
	handlers, compiled statements and database connection warm from one job to the next."""

	queue_class = PriorityQueue

	def job_of(self, message) -> tuple[str, str] | None:
		return _our_message(message)

	def run_message(self, message, queue, job_id: str, message_id: str) -> None:
		"""Run the engine's message without RQ's per-job bookkeeping (an execution record, the
		started and finished registries, the message's status and result: about 20 Redis round
		trips a job). The database holds the job's state and outcome, and the lease, not RQ's
		registries, recovers a run that dies; the message itself is deleted once run, as
		result_ttl=0 would. A run that raises (the database unreachable) leaves the job to the
		scheduler, which finds it Queued without a message, or Running with a lapsed lease."""
		with self.connection.pipeline() as pipeline:
			self.heartbeat(self.get_heartbeat_ttl(message), pipeline)  # the key outlives a long job
			# RQ's stop-job command is sent to the worker named on the message: the hard stop of
			# a canceled job must reach this child at once, not at its next heartbeat.
			pipeline.hset(message.key, "worker_name", self.name)
			pipeline.execute()
		try:
			execute(runtime.current(), job_id, message_id)
		except Exception:
			logger.exception(
				"Running job %s (message %s) failed; the scheduler will recover it", job_id, message_id
			)
		finally:
			self.connection.delete(message.key)


def run_workers(
	engine: "Engine",
	count: int,
	burst: bool = False,
	fork_per_job: bool = False,
	max_jobs_per_child: int = 0,
	max_memory_per_child: int = 0,
) -> int:
	"""`count` workers; SIGTERM/SIGINT stop them all (warm: the running jobs finish). Returns
	how many failed. Where a child cannot be tied to its supervisor (no prctl: not Linux), a job
	could outlive the process holding its lease, so the workers fork a work-horse per job."""
	if not fork_per_job and _prctl is None:
		logger.warning("Children cannot be tied to their supervisor here; forking a work-horse per job")
		fork_per_job = True
	if fork_per_job:
		return _run_forking_workers(engine, count, burst)
	runtime.configure(engine)
	_warm_up(engine)  # once, in the supervisor: every child starts warm
	level = logging.getLevelName(logging.getLogger().level)

	def run_child(slot: Slot) -> int:
		worker = WarmWorker(
			engine.queue.in_priority_order(),
			connection=engine.queue.redis,
			slot=slot,
			grace_seconds=engine.settings.cancel_grace_seconds,
			max_memory_mb=max_memory_per_child,
		)
		with engine.store.keep_connection():  # one connection for every claim and settle
			return worker.serve(burst, max_jobs_per_child, level)

	def settle_lost(running: Running, exitcode: int | None) -> None:
		with engine.store.session():
			how = f"the worker child running it exited ({exitcode})"
			settle_lost_run(engine, running.job_id, running.message_id, how)

	return supervise(run_child, settle_lost, count, burst)


def run_worker(engine: "Engine", burst: bool = False) -> None:
	"""One RQ worker, forking a work-horse per job as RQ and Frappe's bench workers do; it claims
	and settles each job itself and leaves the horse only the handler (see forking_worker.py)."""
	from .forking_worker import ForkingWorker

	runtime.configure(engine)
	_warm_up(engine)
	worker = ForkingWorker(engine.queue.in_priority_order(), connection=engine.queue.redis, engine=engine)
	worker.work(
		burst=burst, logging_level=logging.getLevelName(logging.getLogger().level), with_scheduler=False
	)


def _warm_up(engine: "Engine") -> None:
	"""Rehearse one job here, in a transaction that is rolled back, so the store compiles the
	statements of a claim and a settle (its `Prepared` cache) before the first job rather than
	during it; then freeze the heap, those statements included, so garbage collections (the
	worker's after each fork, a horse's) write to fewer shared pages."""
	from .executor import execute

	rehearsal = getattr(engine.store, "rehearsal", None)
	if rehearsal is not None:
		jobs_logger = logging.getLogger("dartwing.jobs")
		muted, jobs_logger.disabled = jobs_logger.disabled, True
		try:
			with rehearsal(), tracing.muted():
				job = _rehearsal_job(engine)
				execute(engine, job["name"], job["queue_job_id"])
		except Exception:
			jobs_logger.disabled = muted
			jobs_logger.warning("Worker warm-up failed; jobs will run, a little slower", exc_info=True)
		finally:
			jobs_logger.disabled = muted
	gc.freeze()


def _rehearsal_job(engine: "Engine") -> dict:
	"""A no-op job with its own organization and job type, written only inside the rehearsal."""
	name = "__warm_up__"
	engine.store.insert("Organization", {"name": name, "organization_name": name, "status": "Active"})
	engine.store.insert(
		"Job Type", {"name": name, "type_name": name, "handler": "noop", "default_timeout": 60}
	)
	job = {
		"name": name,
		"job_type": name,
		"organization": name,
		"owner_user": "Administrator",
		"status": "Queued",
		"priority": "Normal",
		"input_parameters": "{}",
		"job_hash": name,
		"queue_job_id": f"{name}-1",
		"timeout_seconds": 60,
		"transition_count": 1,
	}
	engine.store.insert("Background Job", job)
	return job


def _run_forking_workers(engine: "Engine", count: int, burst: bool = False) -> int:
	"""`count` forking workers as child processes; SIGTERM/SIGINT stop them all. Returns failed
	children."""
	if count == 1:
		run_worker(engine, burst)
		return 0
	context = multiprocessing.get_context("fork")
	children = [context.Process(target=run_worker, args=(engine, burst), daemon=False) for _ in range(count)]
	for child in children:
		child.start()

	def forward(signum, _frame):
		for child in children:
			if child.pid and child.is_alive():
				os.kill(child.pid, signum)

	previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
	try:
		for child in children:
			child.join()
	finally:
		for s, handler in previous.items():
			signal.signal(s, handler)
	return sum(1 for child in children if child.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT))
