"""The standalone worker: an RQ worker that claims and settles each job itself, on its warm
database connection, and forks the work-horse only to run the handler.

Why: a work-horse is a fresh fork. The database work of a job (open a connection, read the job,
commit the claim, commit the outcome) costs a new horse several times what it costs this
long-lived process, mostly in copied pages and a new connection. See docs/performance.md.

What keeps the design's rules:
- The horse dies with its worker (Linux PR_SET_PDEATHSIG), and the worker extends the job's lease
  while the horse runs, so a live horse always has a live lease and a job never runs twice at once.
  Where the horse cannot be tied to its worker, the horse runs the whole job as before.
- The claim reaches the horse on the in-memory queue message (HandoffJob), through the fork; the
  horse reports how the attempt ended through a file the worker reads after the horse exits.
  A horse that exits without a report (killed, crashed) is a failed attempt, settled at once with
  the retry policy, like a lapsed lease; a canceled job's hard stop ends Canceled.
"""

import ctypes
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from rq.job import Job
from rq.worker import WorkerStatus

from . import runtime, states, tracing
from .backends.rq_queue import EXECUTE, PriorityQueue
from .executor import Claim, Failure, Outcome, attempt, claim, extend_lease, log_failure, settle
from .prefork import _STOP_SIGNALS, QuickExitWorker

if TYPE_CHECKING:
	from .engine import Engine

logger = logging.getLogger("dartwing.jobs")
_PR_SET_PDEATHSIG = 1


def _load_prctl():
	if not sys.platform.startswith("linux"):
		return None
	try:
		return ctypes.CDLL(None, use_errno=True).prctl
	except (OSError, AttributeError):
		return None


_prctl = _load_prctl()


@dataclass
class Handoff:
	"""What the worker decided before forking, for the horse to act on."""

	job_id: str
	queue_job_id: str
	claimed: Claim | str  # a Claim to run, or the status the job already ended in
	report_fd: int
	worker_pid: int
	claimed_at: float  # time.monotonic() in the worker, the same clock in the horse

	def run_in_horse(self, engine: "Engine") -> str:
		"""In the work-horse: run the handler and report the outcome to the worker."""
		if not isinstance(self.claimed, Claim):
			return self.claimed
		_die_with_worker(self.worker_pid)
		if time.monotonic() - self.claimed_at > engine.settings.lease_seconds / 2:
			# Started so late that the lease may have lapsed and the job gone to another worker.
			os._exit(71)
		outcome = attempt(engine, self.claimed)
		_write_report(self.report_fd, outcome)
		tracing.flush()  # the horse ends with os._exit
		return outcome.status


class HandoffJob(Job):
	"""The queue message of a job the worker claimed carries the Handoff, in memory only (it is
	not saved to Redis): in the horse forked for it, running the message runs just the handler."""

	handoff: Handoff | None = None

	def _execute(self):
		handoff = self.handoff
		if handoff is not None and os.getpid() != handoff.worker_pid:
			return handoff.run_in_horse(runtime.current())
		return super()._execute()


class ForkingWorker(QuickExitWorker):
	"""rq.Worker, forking a work-horse per job, that claims before the fork and settles after it."""

	queue_class = PriorityQueue
	job_class = HandoffJob

	def __init__(self, *args, engine: "Engine", **kwargs):
		# RQ calls maintain_heartbeats every job_monitoring_interval while a horse runs: that is
		# when this worker extends the lease of the job its horse is running.
		kwargs.setdefault("job_monitoring_interval", max(1, int(engine.settings.lease_seconds / 3)))
		super().__init__(*args, **kwargs)
		self.engine = engine
		self.handoff: Handoff | None = None  # the job this worker claimed, while its horse runs
		self._reports = tempfile.TemporaryFile()

	def work(self, *args, **kwargs):
		with self.engine.store.keep_connection():  # one connection for every claim and settle
			return super().work(*args, **kwargs)

	def execute_job(self, job, queue):
		target = _our_message(job)
		if target is None or _prctl is None:
			return super().execute_job(job, queue)
		claimed = None
		with _stop_signals_held() as held:
			try:
				with self.engine.store.session():
					claimed = claim(self.engine, *target)
			except Exception:
				logger.warning(
					"Claiming %s in the worker failed; its horse runs it whole", target, exc_info=True
				)
			if claimed is not None and held:
				# Asked to stop while claiming: RQ's warm shutdown waits for a BUSY worker's job.
				self.set_state(WorkerStatus.BUSY)
		if claimed is None:
			return super().execute_job(job, queue)
		self._reports.seek(0)
		self._reports.truncate()
		started = time.monotonic()
		job.handoff = self.handoff = Handoff(*target, claimed, self._reports.fileno(), os.getpid(), started)
		try:
			super().execute_job(job, queue)
		finally:
			job.handoff = self.handoff = None
			if isinstance(claimed, Claim):
				with _stop_signals_held():  # RQ would raise StopRequested in the middle of the save
					self._settle(claimed, time.monotonic() - started)

	def maintain_heartbeats(self, job, *args, **kwargs):
		# The lease first: it must not wait on RQ's own Redis bookkeeping.
		handoff = self.handoff
		if handoff is not None and isinstance(handoff.claimed, Claim):
			try:
				if not extend_lease(self.engine, handoff.claimed.job):
					# Canceled by force, or rescued after a lapse: this run must end now.
					logger.warning("Job %s is no longer this worker's; killing its horse", handoff.job_id)
					self.kill_horse()
			except Exception:
				logger.warning("Heartbeat failed job_id=%s", handoff.job_id, exc_info=True)
		super().maintain_heartbeats(job, *args, **kwargs)

	def _settle(self, claimed: Claim, seconds: float) -> None:
		outcome = self._read_report()
		if outcome is None:
			if self._horse_may_live():
				return  # never settle a job its horse may still be running: the lease decides
			outcome = Outcome(states.FAILED, failure=self._horse_death(claimed, seconds))
		try:
			with self.engine.store.session():
				settle(self.engine, claimed, outcome)
		except Exception:
			logger.exception("Saving the outcome of job %s failed; its lease will lapse", claimed.job["name"])

	def _horse_death(self, claimed: Claim, seconds: float) -> Failure:
		"""Why an attempt ended without a report: past its timeout, RQ's backstop killed a horse
		that ignored the deadline; otherwise the horse died (killed, out of memory, crashed)."""
		failure = Failure.of_lost_run(
			claimed.job, seconds, f"the work-horse of worker {self.name} ended without reporting an outcome"
		)
		log_failure(claimed, seconds, failure)
		return failure

	def _read_report(self) -> Outcome | None:
		self._reports.seek(0)
		raw = self._reports.read()
		if not raw:
			return None
		try:
			report = json.loads(raw)
			failure = report.pop("failure")
			return Outcome(**report, failure=Failure(**failure) if failure else None)
		except (ValueError, TypeError):
			logger.warning("Unreadable work-horse report %r", raw[:200])
			return None

	def _horse_may_live(self) -> bool:
		pid = self.horse_pid
		if not pid:
			return False
		try:
			os.kill(pid, 0)
		except ProcessLookupError:
			return False
		except PermissionError:
			return True  # the pid is someone else's now, or still the horse's: cannot tell
		return True


@contextmanager
def _stop_signals_held() -> Iterator[list]:
	"""Hold SIGINT/SIGTERM while the worker claims or settles: RQ's handlers raise StopRequested
	(an Exception) wherever they land, which would cut a claim or a save in half. The handlers are
	swapped for a recorder (Python runs signal handlers in the main thread, whichever thread the
	signal reached, so a thread's signal mask would not do); a held signal is raised again, to RQ's
	handler, when the block ends."""
	held: list[int] = []
	previous = {s: signal.signal(s, lambda signum, _frame: held.append(signum)) for s in _STOP_SIGNALS}
	try:
		yield held
	finally:
		for signum, handler in previous.items():
			signal.signal(signum, handler)
		for signum in held:
			signal.raise_signal(signum)


def _our_message(job) -> tuple[str, str] | None:
	try:
		if job.func_name == EXECUTE and len(job.args) == 2:
			return str(job.args[0]), str(job.args[1])
	except Exception:  # a message this worker cannot even decode: RQ reports it as usual
		pass
	return None


def _die_with_worker(worker_pid: int) -> None:
	"""The horse must not outlive its worker: nothing would extend its lease, and the scheduler
	would give the job to another worker while this horse still ran it. Where the tie cannot be
	made (no prctl), it must not run at all."""
	if _prctl is None or _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
		os._exit(70)  # untied, the horse must not run the job; the worker settles it as failed
	if os.getppid() != worker_pid:
		os._exit(70)  # the worker died before the tie was made


def _write_report(fd: int, outcome: Outcome) -> None:
	data = json.dumps(asdict(outcome), default=str).encode()
	while data:
		data = data[os.write(fd, data) :]
