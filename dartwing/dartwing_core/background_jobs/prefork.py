"""Workers that run jobs in long-lived child processes, not in a process forked per job.

Why: a fork per job costs a job its warm state (handlers, compiled statements, the database
connection) and the kernel's page copies; a long-lived child keeps all of it from one job to the
next. Both backends use this module: `dartwing-jobs worker` (standalone) and
`bench --site SITE dartwing-worker` (Frappe) differ only in how a child starts and connects.

The process model (docs/architecture.md):
- A supervisor forks N children and does no job work itself. Each child runs an RQ worker over the
  queues and runs its backend's job messages in its own process (as rq.SimpleWorker does); any
  other message is run as rq.Worker runs it, in a work-horse forked for it.
- A child dies with its supervisor (PR_SET_PDEATHSIG), so a job never runs on after the process
  that would report it is gone; the executor's heartbeat thread extends the job's lease while
  the handler runs, as anywhere else.
- A child announces each job it starts in a slot of shared memory. When a child dies, the
  supervisor settles the job it was running at once as a failed attempt (the retry policy
  applies) and forks a new child. A child past the job's deadline (its RQ timeout, itself past the
  engine's, plus the cancel grace: a handler that blocks signals) is killed the same way.
- A hard cancel (the scheduler's stop command for the running job) ends the child: the job is
  already Canceled, and a new child takes its place. So does a heartbeat that finds the job's
  lease no longer the child's (the stop command was lost, or the job was rescued after a lapse).
- A child is replaced after `max_jobs_per_child` jobs, or after the job that took its resident
  memory past `max_memory_per_child` MB.
"""

import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Callable
from typing import NamedTuple

from rq import SimpleWorker, Worker
from rq.worker import WorkerStatus

from . import runtime, tracing

logger = logging.getLogger("dartwing.jobs")
RECYCLED = 3  # a child's exit code: it served its jobs or its memory; replace it
STOPPED = 4  # a child's exit code: the job it ran was stopped by force
# A child that cannot even start (an import error, a database it cannot reach) is not respawned
# for ever: after this many in a row, each dead within this many seconds having run no job, the
# supervisor stops.
FAILED_STARTS = 5
FAILED_START_SECONDS = 5
_SLOT_BYTES = 256
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class Running(NamedTuple):
	"""What a child announced it runs: the job, its queue message, and when to kill the child."""

	job_id: str
	message_id: str
	deadline: float  # time.monotonic() (one clock for every process on Linux); 0 for none


class Slot:
	"""A child's announcement of the job it runs, in shared memory: the child writes, the
	supervisor reads, and it survives the child's death."""

	def __init__(self, context):
		self._value = context.Array("c", _SLOT_BYTES, lock=False)  # one writer: the child

	def announce(self, running: Running | None) -> None:
		text = f"{running.job_id}|{running.message_id}|{running.deadline:.0f}" if running else ""
		self._value.value = text.encode()[: _SLOT_BYTES - 1]

	def read(self) -> Running | None:
		try:
			job_id, message_id, deadline = self._value.value.decode().split("|")
			return Running(job_id, message_id, float(deadline))
		except ValueError:  # empty, or torn by a child killed while writing it
			return None


class QuickExitWorker(Worker):
	"""rq.Worker whose exit never waits on its pub/sub thread (see unsubscribe)."""

	def unsubscribe(self) -> None:
		"""Stop the pub/sub thread before sending UNSUBSCRIBE, not after. RQ (2.x and 3.0)
		sends UNSUBSCRIBE, then stops the thread, which waits in get_message(timeout=60) (RQ's
		sleep_time). When the thread reads the reply before the stop, it goes back to waiting
		(on a subscription event nothing will set); redis-py 8.2's stop() then joins it, and
		the worker's exit hangs for 60 s: about one exit in seven with redis-py 8.2.0, none with
		5.x to 8.1 (whose stop() only clears the flag; RQ's join then gives up after 1 s). With
		the flag cleared first, the reply ends the thread's last wait."""
		if not self.pubsub_thread:
			return
		try:
			self.pubsub_thread.stop(timeout=0)  # redis-py >= 8.2: clears the flag, waits for nothing
		except TypeError:
			self.pubsub_thread.stop()  # redis-py < 8.2: stop() only clears the flag
		self.pubsub.unsubscribe()
		self.pubsub_thread.join(timeout=1)
		self.pubsub.close()


class InProcessWorker(QuickExitWorker):
	"""An RQ worker in a supervised child: runs its backend's job messages in this process, as
	rq.SimpleWorker does, and forks a work-horse for any other message, as rq.Worker does.
	Subclasses say which messages are theirs (`job_of`) and may refresh state before each."""

	def __init__(self, *args, slot: Slot, grace_seconds: float, max_memory_mb: int = 0, **kwargs):
		super().__init__(*args, **kwargs)
		self.slot = slot
		self.grace_seconds = grace_seconds
		self.max_memory_mb = max_memory_mb
		self.recycle = False  # replace this child after the current job
		self.jobs_run = 0
		self.running_message: str | None = None  # the RQ id of the message run in this process
		self._renewed_at = float("-inf")

	def job_of(self, message) -> tuple[str, str] | None:
		"""(job id, message id) when this process runs the message itself."""
		raise NotImplementedError

	def before_in_process(self, message) -> None:
		"""Make this process ready for the message, as a new work-horse would be."""

	def run_message(self, message, queue, job_id: str, message_id: str) -> None:
		"""Run the message of (job_id, message_id) here, with RQ's own bookkeeping (as
		rq.SimpleWorker, on every version)."""
		SimpleWorker.execute_job(self, message, queue)

	def broken_after_job(self) -> bool:
		"""True when the job left this process unfit for another (then it is replaced)."""
		return False

	def serve(self, burst: bool, max_jobs: int, logging_level: str = "WARNING") -> int:
		"""Work until stopped, drained (burst) or due for replacement; the child's exit code."""
		self.work(burst=burst, max_jobs=max_jobs or None, logging_level=logging_level, with_scheduler=False)
		served_all = max_jobs and self.jobs_run >= max_jobs
		return RECYCLED if self.recycle or served_all else 0

	def execute_job(self, job, queue):
		self.jobs_run += 1
		target = self.job_of(job)
		if target is None:
			return super().execute_job(job, queue)  # forked, as rq.Worker runs it
		self.set_state(WorkerStatus.BUSY)  # a warm shutdown from here on waits for this job
		self.before_in_process(job)
		# The message's RQ timeout is the job's own plus a backstop: past it and the cancel grace,
		# the handler ignored both the engine's deadline and RQ's.
		deadline = time.monotonic() + job.timeout + self.grace_seconds if job.timeout else 0
		self.slot.announce(Running(*target, deadline))
		self.running_message = job.id
		finished = False
		try:
			self.run_message(job, queue, *target)
			finished = True
		finally:
			self.running_message = None
			if finished:  # otherwise the supervisor settles it once this child is gone
				self.slot.announce(None)
			self.set_state(WorkerStatus.IDLE)
		if self.broken_after_job() or (self.max_memory_mb and _resident_mb() > self.max_memory_mb):
			self.recycle = True
			self._stop_requested = True

	def heartbeat(self, timeout: int | None = None, pipeline=None):
		"""RQ renews the worker's key (three commands) up to five times a job, each for
		`worker_ttl` + 60 s; renewing a key of minutes more than once a second buys nothing. A
		renewal with its own TTL or pipeline (a long job's) always goes through."""
		now = time.monotonic()
		if timeout is None and pipeline is None and now - self._renewed_at < 1:
			return
		self._renewed_at = now
		super().heartbeat(timeout, pipeline)

	def get_heartbeat_ttl(self, job, *args, **kwargs) -> int:
		"""A job run in this process keeps RQ's heartbeat for its whole timeout, as
		SimpleWorker's does; a forked one is kept alive by the monitoring loop as usual."""
		return (job.timeout if job.timeout and job.timeout > 0 else 420) + 60

	def request_force_stop(self, signum, frame):
		"""A cold shutdown during an in-process job: RQ raises SystemExit, which RQ's own
		perform_job (the Frappe children's path) would swallow, ending the job's run as if it had
		finished, and the supervisor would never settle it. End the child instead, leaving the
		job announced in its slot."""
		try:
			super().request_force_stop(signum, frame)
		except SystemExit:
			if self.running_message is not None:
				logger.warning("Cold shutdown during job message %s; its child exits", self.running_message)
				os._exit(STOPPED)
			raise

	def kill_horse(self, *args, **kwargs):
		"""RQ kills the process group of `horse_pid`, which is 0 (this child's own group, its
		supervisor and siblings included) while a job runs in this process: end only this child
		then (RQ 3's stop-execution command comes here), its job left announced in its slot."""
		if self.horse_pid:
			return super().kill_horse(*args, **kwargs)
		if self.running_message is not None:
			logger.warning("Job message %s was stopped; its child exits", self.running_message)
			os._exit(STOPPED)

	def handle_payload(self, message):
		"""The scheduler's hard stop of the job this child runs in-process: the job is already
		Canceled; end the child, and the supervisor starts another."""
		with contextlib.suppress(Exception):
			from rq.command import parse_payload

			payload = parse_payload(message)
			running = self.running_message
			if running and payload.get("command") == "stop-job" and payload.get("job_id") == running:
				logger.warning("Job %s was stopped; its child exits", payload.get("job_id"))
				os._exit(STOPPED)
		super().handle_payload(message)


def _resident_mb() -> float:
	return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(supervisor: int, run_child: Callable[[Slot], int], slot: Slot) -> None:
	from .forking_worker import _die_with_worker

	for signum in _STOP_SIGNALS:  # not the supervisor's handlers; RQ sets its own
		signal.signal(signum, signal.SIG_DFL)
	signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
	_die_with_worker(supervisor)
	runtime.lost_lease_exit_code = STOPPED
	code = run_child(slot)
	tracing.flush()  # os._exit skips the SDK's flush at exit
	os._exit(code)


def supervise(
	run_child: Callable[[Slot], int],
	settle_lost: Callable[[Running, int | None], None],
	workers: int = 1,
	burst: bool = False,
) -> int:
	"""Keep `workers` children running `run_child` until stopped (or, with `burst`, until each
	has found the queues empty); `settle_lost` settles the job of a child that died running it
	(when it fails, the job's lease lapses and the scheduler rescues it).
	SIGTERM/SIGINT are passed on to every child (a second one: RQ's cold shutdown). Returns how
	many children failed."""
	context = multiprocessing.get_context("fork")
	supervisor = os.getpid()
	stopping = False
	failed = 0

	def spawn() -> tuple:
		slot = Slot(context)
		process = context.Process(target=_child, args=(supervisor, run_child, slot), daemon=False)
		# A stop signal between the fork and the child's own handlers must not run the
		# supervisor's handler inside the child: blocked here, unblocked there.
		signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
		try:
			process.start()
		finally:
			signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
		return process, slot, time.monotonic()

	signaled: set[int] = set()
	stop_signal = signal.SIGTERM

	def stop(signum, _frame):
		"""Passed on to every child from the loop, so a child spawned while the signal arrived
		gets it too."""
		nonlocal stopping, stop_signal
		stopping, stop_signal = True, signum
		signaled.clear()

	children = [spawn() for _ in range(workers)]
	previous = {signum: signal.signal(signum, stop) for signum in _STOP_SIGNALS}
	failed_starts = 0  # children in a row that died within seconds, having run no job
	served: set[int] = set()  # children seen running a job
	try:
		while children:
			if stopping:
				for process, _, _ in children:
					if process.pid not in signaled:
						signaled.add(process.pid)
						with contextlib.suppress(ProcessLookupError):
							os.kill(process.pid, stop_signal)
			time.sleep(0.05 if burst else 0.2)
			kept = []
			for process, slot, started in children:
				running = slot.read()
				if running:
					served.add(process.pid)
				if process.is_alive():
					if running and running.deadline and time.monotonic() > running.deadline:
						logger.warning("Job %s passed its deadline; killing its child", running.job_id)
						process.kill()
					kept.append((process, slot, started))
					continue
				process.join()
				if running:
					try:
						settle_lost(running, process.exitcode)
					except Exception:
						logger.exception(
							"Settling job %s of a dead child failed; its lease will lapse", running.job_id
						)
				quick = process.pid not in served and time.monotonic() - started < FAILED_START_SECONDS
				served.discard(process.pid)
				ended_well = process.exitcode in (0, RECYCLED, STOPPED)
				if ended_well or not quick:
					failed_starts = 0  # "in a row": any other end breaks the run
				if not ended_well:
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
					if not ended_well:
						time.sleep(0.5)  # a child that cannot start is not respawned in a tight loop
					kept.append(spawn())
			children[:] = kept
	finally:
		for signum, handler in previous.items():
			signal.signal(signum, handler)
	return failed
