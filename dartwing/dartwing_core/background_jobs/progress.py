"""What a handler sees while it runs: progress reporting, cooperative cancellation and pausing,
named steps (steps.py) and items (items.py)."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import states
from .errors import JobCanceled, JobPaused
from .items import Items
from .steps import Steps
from .transitions import JOB


@dataclass
class JobContext:
	"""Passed as the first argument to every handler.

	progress() is cheap to call in a tight loop: it publishes at most every
	progress_publish_interval and writes the row at most every progress_persist_interval.
	"""

	engine: object
	job: dict
	attempt: int
	logger: logging.Logger
	declared_steps: tuple[str, ...] = ()
	max_failed_items: int = 0
	reports_own_progress: bool = False  # once the handler calls progress(), steps leave it alone
	steps: Steps | None = None
	items: Items | None = None
	_last_publish: float = 0.0
	_last_persist: float = 0.0
	_last_check: float = field(default_factory=time.monotonic)
	_cancel_seen: str = ""

	@property
	def job_id(self) -> str:
		return self.job["name"]

	@property
	def organization(self) -> str:
		return self.job["organization"]

	@property
	def user(self) -> str:
		return self.job["owner_user"]

	@property
	def idempotency_key(self) -> str:
		"""Stable across attempts: execution is at-least-once, so side effects should key on it."""
		return self.job["name"]

	def __post_init__(self) -> None:
		if self.steps is None:
			self.steps = Steps(self.engine, self.job, self.attempt, self.declared_steps)
		if self.items is None:
			self.items = Items(self.engine, self.job, self.attempt, self.max_failed_items)

	@property
	def item_key(self) -> str | None:
		"""While ctx.each runs an item: `<job id>:<item key>`, the same in every attempt, for the
		item's side effects to key on (an item may run again after a crash)."""
		return self.items.current_key

	def each(self, items, process: Callable[[Any], Any], key: Callable[[Any], Any] | None = None) -> dict:
		"""Record every item once, then `process(item)` each one not yet done (see items.py): a
		retry runs the failed ones, a run after a crash the unfinished ones. `items`: a list, a
		range, or a function returning a fresh iterable (they are read twice, never held); `key`:
		the item's key (a string or an integer, unique in the job), by default its position.
		Returns the job's counts {total, done, failed, skipped}; raises ItemsFailed (transient)
		after the other items ran when more failed than the handler's max_failed_items."""
		return self.items.run(self, items, process, key)

	def step(self, name: str, fn: Callable, *args, timeout: float | None = None, **kwargs) -> Any:
		"""`fn(*args, **kwargs)` as the step `name`, unless an earlier attempt of this job completed
		it: then its saved result, without calling `fn`. The result must be JSON; the handler gets
		it back as JSON decodes it, on the first run as on reuse. Past `timeout` seconds the step
		fails the attempt as Timed Out (the retry policy applies)."""
		return self.steps.run(self, name, fn, args, kwargs, timeout)

	def progress(self, percent: float, message: str | None = None) -> None:
		"""Also a place to pause (not to cancel: that stays checkpoint()'s)."""
		self._report(percent, message)
		self.checkpoint(cancel=False)

	def _report(
		self, percent: float, message: str | None = None, own: bool = True, persist: bool = True
	) -> None:
		"""progress(); `own` False for the engine's reports (steps, items), which yield to the
		handler's; `persist` False for a report its caller writes itself (items, with their counts)."""
		if own:
			self.reports_own_progress = True
		percent = max(0.0, min(100.0, float(percent)))
		self.job["progress"] = percent
		if message is not None:
			self.job["progress_message"] = str(message)[:1000]
		now = time.monotonic()
		settings = self.engine.settings
		if now - self._last_publish >= settings.progress_publish_interval or percent >= 100:
			self._last_publish = now
			self.engine.publish("job_progress", self.job)
		if persist and now - self._last_persist >= settings.progress_persist_interval:
			self._last_persist = now
			self.persist_progress()

	def persist_progress(self) -> None:
		"""Saved progress is a courtesy to watchers, like events: failing to save it must not fail
		the job (the final outcome is saved by the executor)."""
		try:
			self.engine.store.update_apart(
				JOB,
				self.job_id,
				{"progress": self.job["progress"], "progress_message": self.job.get("progress_message")},
				expect=[("status", "=", states.RUNNING), ("queue_job_id", "=", self.job["queue_job_id"])],
			)
		except Exception:
			self.logger.warning("Saving progress failed job_id=%s", self.job_id, exc_info=True)

	def checkpoint(self, cancel: bool = True) -> None:
		"""Raise JobCanceled if a cancel was requested, or if this run no longer owns the job
		(its lease lapsed and the scheduler gave the job to another worker); JobPaused if a pause
		of the job or of its job type was. Reads the row (with its type's flag, in one query) at
		most every checkpoint_interval. Steps and items call it; progress() too, for pauses."""
		if cancel and self._cancel_seen:
			raise JobCanceled(self._cancel_seen)
		now = time.monotonic()
		if now - self._last_check < self.engine.settings.checkpoint_interval:
			return
		self._last_check = now
		row, linked = self.engine.store.get_with_links(JOB, self.job_id, _TYPE_PAUSED)
		if row is None or row["status"] != states.RUNNING or row["queue_job_id"] != self.job["queue_job_id"]:
			raise JobCanceled("this run no longer owns the job")
		if row.get("cancel_requested_at"):
			# progress() reads for pauses only: the next checkpoint() cancels without a read
			self._cancel_seen = f"canceled by {row.get('canceled_by') or 'a user'}"
			if cancel:
				raise JobCanceled(self._cancel_seen)
		if row.get("pause_requested_at"):
			raise JobPaused(f"paused by {row.get('paused_by') or 'a user'}")
		if (linked["job_type"] or {}).get("is_paused"):
			raise JobPaused(f"job type {row['job_type']} paused")


_TYPE_PAUSED = {"job_type": ("Job Type", ["is_paused"])}
