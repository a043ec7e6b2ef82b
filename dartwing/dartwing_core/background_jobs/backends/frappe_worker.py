"""`bench --site SITE dartwing-worker`: dartwing jobs without a fork per job.

A supervisor process preloads Frappe, this app and every app's handlers (frappe_preload), then
forks N long-lived children. Each child connects to the site once, builds the engine once and runs
an RQ worker over the queues: a dartwing message of its site runs in the child itself, through
Frappe's own `execute_job` with the site already connected (handlers, statements and connection
stay warm); any other message (another site's, a plain Frappe job) is run as `bench worker` runs
it, in a work-horse forked for it.

What keeps the engine's guarantees, with the job running in a long-lived child:
- The executor claims (a lease) and settles as anywhere else, and its heartbeat thread extends the
  lease while the handler runs; a child dies with its supervisor (PR_SET_PDEATHSIG), so a job
  never runs on after the process that holds its lease is gone.
- A child announces each job it starts (shared memory). When a child dies, the supervisor settles
  the job it was running at once as a failed attempt (the retry policy applies), and forks a new
  child. A child past the job's deadline (its timeout plus the cancel grace, for a handler that
  never reaches a checkpoint or blocks signals) is killed and its job settled as timed out.
- A hard cancel (the scheduler's stop command for the running job) ends the child: the job is
  already Canceled, and a new child takes its place.
- A child is replaced after --max-jobs-per-child jobs or when its resident memory passes
  --max-memory-per-child MB (after the job that passed it).
"""

import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import time

import frappe
from frappe.utils.background_jobs import get_queue_list, get_redis_conn
from rq import Worker
from rq.worker import WorkerStatus

from .. import states
from ..executor import CLAIM_LINKS, Claim, Failure, Outcome, log_failure, settle
from ..transitions import JOB
from .frappe_backend import get_engine
from .frappe_queue import RUN_JOB_PATHS

logger = logging.getLogger("dartwing.jobs")
RECYCLED = 3  # a child's exit code: it served its jobs or its memory; replace it
# A child that cannot even start (an import error, a site it cannot reach) is not respawned for
# ever: after this many in a row, each dead within this many seconds, the supervisor stops.
FAILED_STARTS = 5
FAILED_START_SECONDS = 5
STOPPED = 4  # a child's exit code: the job it ran was stopped by force
_SLOT_BYTES = 256


class WarmWorker(Worker):
	"""An rq.Worker that runs its site's dartwing messages in its own process."""

	def __init__(self, *args, site: str, sites_path: str, slot, max_memory_mb: int = 0, **kwargs):
		super().__init__(*args, **kwargs)
		self.site = site
		self.sites_path = sites_path
		self.slot = slot
		self.max_memory_mb = max_memory_mb
		self.recycle = False
		self.jobs_run = 0
		self.in_process = False

	def execute_job(self, job, queue):
		self.jobs_run += 1
		kwargs = job.kwargs
		if kwargs.get("site") != self.site or kwargs.get("method") not in RUN_JOB_PATHS:
			return super().execute_job(job, queue)  # forked, as bench worker runs it
		self.set_state(WorkerStatus.BUSY)
		self._fresh_site()
		# The message's RQ timeout is the job's timeout plus a backstop: past it and the cancel
		# grace, the handler ignored both the engine's deadline and RQ's.
		deadline = time.time() + (job.timeout or 0) + get_engine().settings.cancel_grace_seconds
		_announce(self.slot, kwargs["kwargs"], deadline if job.timeout else 0)
		kwargs["is_async"] = False  # execute_job then uses this process's site connection
		self.in_process = True
		finished = False
		try:
			self.perform_job(job, queue)
			finished = True
		finally:
			self.in_process = False
			if finished:  # otherwise the supervisor settles it once this child is gone
				_announce(self.slot, None, 0)
			self.set_state(WorkerStatus.IDLE)
		if not getattr(frappe.local, "initialised", False) or getattr(frappe.local, "db", None) is None:
			self.recycle = True  # Frappe's retry path destroyed the site: start afresh
			self._stop_requested = True
		if self.max_memory_mb and _resident_mb() > self.max_memory_mb:
			self.recycle = True
			self._stop_requested = True

	def _fresh_site(self) -> None:
		"""Each job starts as in a new horse (flags, config, caches, session), on the warm
		connection, which is checked and opened again when the server dropped it."""
		db = getattr(frappe.local, "db", None)
		frappe.init(site=self.site, sites_path=self.sites_path, force=True)
		try:
			if db is None:
				raise ConnectionError("no connection")
			db.sql("select 1")
			frappe.local.db = db
			db.value_cache = {}
			db.auto_commit_on_many_writes = 0
		except Exception:
			with contextlib.suppress(Exception):
				if db is not None:
					db.close()
			frappe.connect()
		frappe.set_user("Administrator")

	def main_work_horse(self, job, queue):
		"""In a horse forked for another site's or a plain Frappe message: forget this child's
		site before Frappe's execute_job initialises the message's own (and never close this
		child's connection from here: the socket is the child's)."""
		from werkzeug.local import release_local

		frappe.local.db = None
		release_local(frappe.local)
		return super().main_work_horse(job, queue)

	def get_heartbeat_ttl(self, job) -> int:
		"""A job run in this process keeps RQ's heartbeat for its whole timeout, as RQ's own
		SimpleWorker does; a forked one is kept alive by the monitoring loop as usual."""
		return (job.timeout if job.timeout and job.timeout > 0 else 420) + 60

	def handle_payload(self, message):
		"""The scheduler's hard stop of the job this child runs in-process: the job is already
		Canceled; end the child, and the supervisor starts another."""
		with contextlib.suppress(Exception):
			from rq.command import parse_payload

			payload = parse_payload(message)
			if (
				self.in_process
				and payload.get("command") == "stop-job"
				and payload.get("job_id") == self.get_current_job_id()
			):
				logger.warning("Job %s was stopped; its child exits", payload.get("job_id"))
				os._exit(STOPPED)
		super().handle_payload(message)


def _announce(slot, message: dict | None, deadline: float) -> None:
	text = f"{message['background_job']}|{message['message_id']}|{deadline:.0f}" if message else ""
	slot.value = text.encode()[: _SLOT_BYTES - 1]


def _announced(slot) -> tuple[str, str, float] | None:
	try:
		job_id, message_id, deadline = slot.value.decode().split("|")
		return job_id, message_id, float(deadline)
	except ValueError:  # empty, or torn by a child killed while writing it
		return None


def _resident_mb() -> float:
	return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(supervisor: int, site: str, sites_path: str, queues: list[str], burst, max_jobs, max_memory, slot):
	from ..forking_worker import _die_with_worker

	signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the supervisor's handler; RQ sets its own
	signal.signal(signal.SIGINT, signal.SIG_DFL)
	signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
	_die_with_worker(supervisor)
	frappe.init(site=site, sites_path=sites_path)
	frappe.connect()
	get_engine()  # built once, warm for every job
	worker = WarmWorker(
		queues,
		connection=get_redis_conn(),
		site=site,
		sites_path=sites_path,
		slot=slot,
		max_memory_mb=max_memory,
	)
	worker.work(burst=burst, max_jobs=max_jobs or None, logging_level="WARNING")
	served_all = max_jobs and worker.jobs_run >= max_jobs
	os._exit(RECYCLED if worker.recycle or served_all else 0)


def run(
	site: str,
	workers: int = 1,
	burst: bool = False,
	queue: str | None = None,
	max_jobs_per_child: int = 0,
	max_memory_per_child: int = 0,
	sites_path: str = ".",
) -> int:
	"""The supervisor: keeps `workers` children running until stopped (or, with `burst`, until
	each has found the queues empty). Returns how many children failed."""
	frappe.init(site=site, sites_path=sites_path)
	queues = get_queue_list(queue.split(",") if queue else None, build_queue_name=True)
	frappe.destroy()
	context = multiprocessing.get_context("fork")
	supervisor = os.getpid()
	stopping = False
	failed = 0

	def spawn():
		slot = context.Array("c", _SLOT_BYTES, lock=False)  # one writer: the child
		process = context.Process(
			target=_child,
			args=(
				supervisor,
				site,
				sites_path,
				queues,
				burst,
				max_jobs_per_child,
				max_memory_per_child,
				slot,
			),
			daemon=False,
		)
		# A stop signal between the fork and the child's own handlers must not run the
		# supervisor's handler inside the child: blocked here, unblocked there.
		signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
		try:
			process.start()
		finally:
			signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
		return process, slot, time.monotonic()

	signaled: set[int] = set()
	stop_signal = signal.SIGTERM

	def stop(signum, _frame):
		"""Passed on to every child from the loop (a second signal again: RQ's cold shutdown),
		so a child spawned while the signal arrived gets it too."""
		nonlocal stopping, stop_signal
		stopping, stop_signal = True, signum
		signaled.clear()

	children = [spawn() for _ in range(workers)]
	signal.signal(signal.SIGTERM, stop)
	signal.signal(signal.SIGINT, stop)
	failed_starts = 0  # children in a row that died within seconds, having run no job
	served: set[int] = set()  # children seen running a job
	while children:
		if stopping:
			for process, _, _ in children:
				if process.pid not in signaled:
					signaled.add(process.pid)
					with contextlib.suppress(ProcessLookupError):
						os.kill(process.pid, stop_signal)
		time.sleep(0.2)
		kept = []
		for process, slot, started in children:
			running = _announced(slot)
			if running:
				served.add(process.pid)
			if process.is_alive():
				if running and running[2] and time.time() > running[2]:
					logger.warning("Job %s passed its deadline; killing its child", running[0])
					process.kill()
				kept.append((process, slot, started))
				continue
			process.join()
			if running:
				_settle_lost(site, sites_path, *running, process.exitcode)
			quick = process.pid not in served and time.monotonic() - started < FAILED_START_SECONDS
			served.discard(process.pid)
			if process.exitcode in (0, RECYCLED, STOPPED) or not quick:
				failed_starts = 0  # "in a row": any other end breaks the run
			if process.exitcode not in (0, RECYCLED, STOPPED):
				failed += 1
				failed_starts += 1 if quick else 0
				if failed_starts >= FAILED_STARTS and not stopping:
					logger.error(
						"%d children in a row died before running a job (exit code %s); stopping",
						failed_starts,
						process.exitcode,
					)
					stop(signal.SIGTERM, None)
			if not stopping and (process.exitcode != 0 or not burst):
				if process.exitcode not in (0, RECYCLED, STOPPED):
					time.sleep(0.5)  # a child that cannot start is not respawned in a tight loop
				kept.append(spawn())
		children[:] = kept
	return failed


def _settle_lost(site: str, sites_path: str, job_id: str, message_id: str, deadline: float, exitcode):
	"""The job a dead child was running: a failed attempt now (timed out when past its
	deadline), unless it was settled already (canceled by force, rescued). Settled as the
	executor settles any attempt, so a limited organization's next job gets its room at once."""
	frappe.init(site=site, sites_path=sites_path)
	try:
		frappe.connect()
		engine = get_engine()
		job, linked = engine.store.get_with_links(JOB, job_id, CLAIM_LINKS)
		if job is None or job["status"] != states.RUNNING or job["queue_job_id"] != message_id:
			return
		failure = Failure.of_lost_run(
			job,
			timed_out=bool(deadline) and time.time() > deadline,
			how=f"the dartwing-worker child running it exited ({exitcode})",
		)
		org = linked["organization"] or {}
		claimed = Claim(
			job,
			linked["job_type"] or {},
			None,
			job["retry_count"] + 1,
			int(org.get("max_in_flight_jobs") or 0),
		)
		log_failure(claimed, 0.0, failure)
		settle(engine, claimed, Outcome(states.FAILED, failure=failure))
		frappe.db.commit()
	except Exception:
		logger.exception("Settling job %s of a dead child failed; its lease will lapse", job_id)
	finally:
		frappe.destroy()
