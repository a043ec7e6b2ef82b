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
from ..executor import Failure, settle_failure
from ..retry import TRANSIENT
from ..transitions import JOB
from .frappe_backend import RUN_JOB, get_engine, read_committed

logger = logging.getLogger("dartwing.jobs")
RECYCLED = 3  # a child's exit code: it served its jobs or its memory; replace it
_SLOT_BYTES = 256


class WarmWorker(Worker):
	"""An rq.Worker that runs its site's dartwing messages in its own process."""

	def __init__(self, *args, site: str, slot, max_memory_mb: int = 0, **kwargs):
		super().__init__(*args, **kwargs)
		self.site = site
		self.slot = slot
		self.max_memory_mb = max_memory_mb
		self.recycle = False
		self.jobs_run = 0

	def execute_job(self, job, queue):
		self.jobs_run += 1
		kwargs = job.kwargs
		if kwargs.get("site") != self.site or kwargs.get("method") != RUN_JOB:
			return super().execute_job(job, queue)  # forked, as bench worker runs it
		self.set_state(WorkerStatus.BUSY)
		# The message's RQ timeout is the job's timeout plus a backstop: past it and the cancel
		# grace, the handler ignored both the engine's deadline and RQ's.
		deadline = time.time() + (job.timeout or 0) + get_engine().settings.cancel_grace_seconds
		_announce(self.slot, kwargs["kwargs"], deadline if job.timeout else 0)
		kwargs["is_async"] = False  # execute_job then uses this process's site connection
		try:
			self.perform_job(job, queue)
		finally:
			_announce(self.slot, None, 0)
			self.set_state(WorkerStatus.IDLE)
		if self.max_memory_mb and _resident_mb() > self.max_memory_mb:
			self.recycle = True
			self._stop_requested = True

	def handle_payload(self, message):
		"""The scheduler's hard stop of the job this child runs: the job is already Canceled;
		end the child, and the supervisor starts another."""
		with contextlib.suppress(Exception):
			from rq.command import parse_payload

			payload = parse_payload(message)
			if payload.get("command") == "stop-job" and payload.get("job_id") == self.get_current_job_id():
				logger.warning("Job %s was stopped; its child exits", payload.get("job_id"))
				os._exit(1)
		super().handle_payload(message)


def _announce(slot, message: dict | None, deadline: float) -> None:
	text = f"{message['background_job']}|{message['message_id']}|{deadline:.0f}" if message else ""
	slot.value = text.encode()[: _SLOT_BYTES - 1]


def _announced(slot) -> tuple[str, str, float] | None:
	text = slot.value.decode()
	if not text:
		return None
	job_id, message_id, deadline = text.split("|")
	return job_id, message_id, float(deadline)


def _resident_mb() -> float:
	return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(site: str, sites_path: str, queues: list[str], burst: bool, max_jobs: int, max_memory: int, slot):
	from ..supervisor import _die_with_worker

	_die_with_worker(os.getppid())
	frappe.init(site=site, sites_path=sites_path)
	frappe.connect()
	read_committed()
	get_engine()  # built once, warm for every job
	worker = WarmWorker(queues, connection=get_redis_conn(), site=site, slot=slot, max_memory_mb=max_memory)
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
	stopping = False
	failed = 0

	def spawn():
		slot = context.Array("c", _SLOT_BYTES)
		process = context.Process(
			target=_child,
			args=(site, sites_path, queues, burst, max_jobs_per_child, max_memory_per_child, slot),
			daemon=False,
		)
		process.start()
		return process, slot

	def stop(signum, _frame):
		nonlocal stopping
		stopping = True
		for process, _ in children:
			with contextlib.suppress(ProcessLookupError):
				os.kill(process.pid, signum)

	children = [spawn() for _ in range(workers)]
	signal.signal(signal.SIGTERM, stop)
	signal.signal(signal.SIGINT, stop)
	while children:
		time.sleep(0.2)
		for index, (process, slot) in list(enumerate(children)):
			running = _announced(slot)
			if process.is_alive():
				if running and running[2] and time.time() > running[2]:
					logger.warning("Job %s passed its deadline; killing its child", running[0])
					process.kill()
				continue
			process.join()
			if running:
				_settle_lost(site, sites_path, *running, process.exitcode)
			if process.exitcode not in (0, RECYCLED):
				failed += 1
			replace = not stopping and (process.exitcode != 0 or not burst)
			children[index] = spawn() if replace else None
		children = [child for child in children if child is not None]
	return failed


def _settle_lost(site: str, sites_path: str, job_id: str, message_id: str, deadline: float, exitcode):
	"""The job a dead child was running: a failed attempt now (timed out when past its
	deadline), unless it was settled already (canceled by force, rescued)."""
	frappe.init(site=site, sites_path=sites_path)
	try:
		frappe.connect()
		engine = get_engine()
		job = engine.store.get(JOB, job_id)
		if job is None or job["status"] != states.RUNNING or job["queue_job_id"] != message_id:
			return
		if deadline and time.time() > deadline:
			timeout = int(job["timeout_seconds"] or 0)
			failure = Failure(TRANSIENT, f"JobTimedOut: exceeded its timeout of {timeout}s", timed_out=True)
		else:
			failure = Failure(
				TRANSIENT, f"WorkHorseDied: the dartwing-worker child running it exited ({exitcode})"
			)
		job_type = engine.store.get("Job Type", job["job_type"]) or {}
		settle_failure(engine, job, failure, job_type, actor="worker")
		frappe.db.commit()
	except Exception:
		logger.exception("Settling job %s of a dead child failed; its lease will lapse", job_id)
	finally:
		frappe.destroy()
