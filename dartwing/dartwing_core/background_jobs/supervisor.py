"""The standalone worker: an RQ worker that claims and settles each job itself, on its warm
database connection, and forks the work-horse only to run the handler.

Why: a work-horse is a fresh fork. The database work of a job (open a connection, read the job,
commit the claim, commit the outcome) costs a new horse several times what it costs this
long-lived process, mostly in copied pages and a new connection. See docs/performance.md.

What keeps the design's rules:
- The horse dies with its worker (Linux PR_SET_PDEATHSIG), and the worker extends the job's lease
  while the horse runs, so a live horse always has a live lease and a job never runs twice at once.
  Where the horse cannot be tied to its worker, the horse runs the whole job as before.
- The horse reports how the attempt ended through a file the worker reads after the horse exits.
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
from dataclasses import asdict, dataclass

from rq import Worker

from . import executor
from .backends.rq_queue import EXECUTE
from .executor import FAILED, Claim, Failure, Outcome, attempt, claim, extend_lease, settle
from .retry import TRANSIENT

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

	def is_for(self, job_id: str, queue_job_id: str) -> bool:
		"""True in the horse forked for this message (not in the worker, nor for another message)."""
		return (job_id, queue_job_id) == (self.job_id, self.queue_job_id) and os.getpid() != self.worker_pid

	def run_in_horse(self, engine) -> str:
		"""In the work-horse: run the handler and report the outcome to the worker."""
		if not isinstance(self.claimed, Claim):
			return self.claimed
		_die_with_worker(self.worker_pid)
		outcome = attempt(engine, self.claimed)
		_write_report(self.report_fd, outcome)
		return outcome.status


class SupervisingWorker(Worker):
	"""rq.Worker, forking a work-horse per job, that claims before the fork and settles after it."""

	def __init__(self, *args, engine, **kwargs):
		# RQ calls maintain_heartbeats every job_monitoring_interval while a horse runs: that is
		# when this worker extends the lease of the job its horse is running.
		kwargs.setdefault("job_monitoring_interval", max(1, int(engine.settings.lease_seconds / 3)))
		super().__init__(*args, **kwargs)
		self.engine = engine
		self._reports = tempfile.TemporaryFile()

	def execute_job(self, job, queue):
		target = _our_message(job)
		if target is None or _prctl is None:
			return super().execute_job(job, queue)
		try:
			with self.engine.store.session():
				claimed = claim(self.engine, *target)
		except Exception:
			logger.warning("Claiming %s in the worker failed; its horse runs it whole", target, exc_info=True)
			return super().execute_job(job, queue)
		self._reports.seek(0)
		self._reports.truncate()
		executor.horse_handoff = Handoff(*target, claimed, self._reports.fileno(), os.getpid())
		started = time.monotonic()
		try:
			super().execute_job(job, queue)
		finally:
			executor.horse_handoff = None
			if isinstance(claimed, Claim):
				self._settle(claimed, time.monotonic() - started)

	def maintain_heartbeats(self, job, *args, **kwargs):
		super().maintain_heartbeats(job, *args, **kwargs)
		handoff = executor.horse_handoff
		if handoff is not None and isinstance(handoff.claimed, Claim):
			try:
				extend_lease(self.engine, handoff.claimed.job)
			except Exception:
				logger.warning("Heartbeat failed job_id=%s", handoff.job_id, exc_info=True)

	def _settle(self, claimed: Claim, seconds: float) -> None:
		outcome = self._read_report()
		if outcome is None:
			if self._horse_may_live():
				return  # never settle a job its horse may still be running: the lease decides
			outcome = Outcome(FAILED, failure=self._horse_death(claimed, seconds))
		try:
			with self.engine.store.session():
				settle(self.engine, claimed, outcome)
		except Exception:
			logger.exception("Saving the outcome of job %s failed; its lease will lapse", claimed.job["name"])

	def _horse_death(self, claimed: Claim, seconds: float) -> Failure:
		"""Why an attempt ended without a report: past its timeout, RQ's backstop killed a horse
		that ignored the deadline; otherwise the horse died (killed, out of memory, crashed)."""
		job = claimed.job
		timeout = int(job["timeout_seconds"] or 0)
		if timeout and seconds >= timeout:
			failure = Failure(TRANSIENT, f"JobTimedOut: exceeded its timeout of {timeout}s", timed_out=True)
		else:
			failure = Failure(
				TRANSIENT,
				f"WorkHorseDied: the work-horse of worker {self.name} ended without reporting an outcome",
			)
		logger.warning(
			"Job failed job_id=%s type=%s attempt=%d duration=%.3fs error=%s",
			job["name"],
			job["job_type"],
			claimed.attempt,
			seconds,
			failure.error_message,
			extra={
				"job_id": job["name"],
				"job_type": job["job_type"],
				"attempt": claimed.attempt,
				"duration": seconds,
			},
		)
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
		return True


def _our_message(job) -> tuple[str, str] | None:
	try:
		if job.func_name == EXECUTE and len(job.args) == 2:
			return str(job.args[0]), str(job.args[1])
	except Exception:  # a message this worker cannot even decode: RQ reports it as usual
		pass
	return None


def _die_with_worker(worker_pid: int) -> None:
	"""The horse must not outlive its worker: nothing would extend its lease, and the scheduler
	would give the job to another worker while this horse still ran it."""
	if _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
		os._exit(70)  # untied, the horse must not run the job; the worker settles it as failed
	if os.getppid() != worker_pid:
		os._exit(70)  # the worker died before the tie was made


def _write_report(fd: int, outcome: Outcome) -> None:
	data = json.dumps(asdict(outcome), default=str).encode()
	while data:
		data = data[os.write(fd, data) :]
