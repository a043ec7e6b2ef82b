"""Named steps of a handler (ctx.step): a completed step's result is saved as JSON, and a later
attempt of the same job (a retry, or a run after a crash) gets it back instead of calling the
step again. Each step has a Background Job Step row, a child table of its job; completions and
failures are notes in the job's hash-chained history."""

import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import tracing
from .engine import check_name
from .errors import StepTimedOut, ValidationError
from .timeouts import deadline
from .transitions import JOB, STEP, new_name, note_run

if TYPE_CHECKING:
	from collections.abc import Callable

	from .engine import Engine
	from .progress import JobContext

RUNNING, COMPLETED, FAILED = "Running", "Completed", "Failed"


def encode_result(what: str, value: Any) -> str:
	"""A step's or an item's result as the JSON text stored; bad input named by `what`."""
	try:
		return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
	except (TypeError, ValueError, RecursionError) as exc:
		raise ValidationError(what, f"is not JSON-serializable: {exc}") from None


@dataclass
class Steps:
	"""The steps of one attempt. `job` is the run's own row (the context's), kept current."""

	engine: "Engine"
	job: dict
	attempt: int
	declared: tuple[str, ...] = ()
	_records: dict[str, dict] | None = None
	_used: set[str] = field(default_factory=set)
	_current: tuple[dict, float] | None = None  # the step running now: its row, monotonic start

	def run(
		self, ctx: "JobContext", name: str, fn: "Callable", args: tuple, kwargs: dict, timeout: float | None
	) -> Any:
		check_name("step", name)
		if self.declared and name not in self.declared:
			raise ValidationError(
				"step", f"{name!r} is not a step its handler declares ({', '.join(self.declared)})"
			)
		if name in self._used:
			raise ValidationError("step", f"{name!r} already ran in this attempt; a step name is used once")
		if timeout is not None and (
			isinstance(timeout, bool)
			or not isinstance(timeout, int | float)
			or not timeout > 0
			or math.isinf(timeout)
		):
			raise ValidationError("timeout", f"of step {name!r} must be a positive number of seconds")
		self._used.add(name)
		record = self._load().get(name)
		if record is not None and record["status"] == COMPLETED:
			return json.loads(record["result"])
		ctx.checkpoint()  # a step is a place to stop: cancel, pause
		record = self._start(name, record)
		follows_steps = self.declared and not ctx.reports_own_progress
		if follows_steps:
			ctx._report(
				ctx.job["progress"],
				f"Step {name} ({self.declared.index(name) + 1}/{len(self.declared)})",
				own=False,
			)
		self._current = (record, time.monotonic())
		timed_out = lambda: StepTimedOut(f"step {name!r} exceeded its timeout of {timeout}s")  # noqa: E731
		with tracing.stepping(name, self.job, ctx.attempt), deadline(timeout or 0, timed_out):
			value = fn(*args, **kwargs)
		encoded = encode_result("step result", value)
		duration = time.monotonic() - self._current[1]
		values = {
			"status": COMPLETED,
			"completed_at": self.engine.now(),
			"duration": duration,
			"result": encoded,
		}
		self.engine.store.update(STEP, record["name"], values)
		record.update(values)
		self._current = None
		progress = {}
		if follows_steps and not ctx.reports_own_progress:
			progress = self._progress(name)
			ctx._report(progress["progress"], progress["progress_message"], own=False)
		note_run(self.engine, self.job, f"Step {name} completed in {duration:.3f}s", progress)
		self.engine.store.commit_work()  # the step's own writes and its record, durable together
		self.engine.publish("job_progress", self.job)  # watchers (the desk form) see the step at once
		return json.loads(encoded)

	def record_failure(self, message: str, timed_out: bool) -> None:
		"""The step that was running when the attempt failed, as Failed. Called after the
		handler's own writes were rolled back, so its row is written again if they took it."""
		if self._current is None:
			return
		record, started = self._current
		self._current = None
		values = {
			"status": FAILED,
			"attempt": self.attempt,
			"completed_at": self.engine.now(),
			"duration": time.monotonic() - started,
			"error": message[:10000],
			"timed_out": int(timed_out),
		}
		if not self.engine.store.update(STEP, record["name"], values):
			self.engine.store.insert(STEP, {**self._row(record["step_name"], record["step_order"]), **values})
		note_run(self.engine, self.job, f"Step {record['step_name']} failed: {message}"[:1000])

	def _load(self) -> dict[str, dict]:
		"""This job's step rows from earlier attempts, read once per attempt."""
		if self._records is None:
			rows = self.engine.store.get_all(STEP, [("parent", "=", self.job["name"])])
			self._records = {row["step_name"]: row for row in rows}
		return self._records

	def _start(self, name: str, record: dict | None) -> dict:
		values = {
			"status": RUNNING,
			"attempt": self.attempt,
			"started_at": self.engine.now(),
			"completed_at": None,
			"duration": None,
			"error": None,
			"timed_out": 0,
		}
		if record is not None and self.engine.store.update(STEP, record["name"], values):
			record.update(values)
			return record
		if self.declared:
			order = self.declared.index(name) + 1
		else:
			order = max((r["step_order"] or 0 for r in self._records.values()), default=0) + 1
		record = {**self._row(name, order), **values}
		self.engine.store.insert(STEP, record)
		self._records[name] = record
		return record

	def _row(self, name: str, order: int) -> dict:
		"""A new step row: a child of the job on Frappe's Table field `steps`."""
		return {
			"name": new_name(),
			"parent": self.job["name"],
			"parenttype": JOB,
			"parentfield": "steps",
			"idx": order,
			"step_name": name,
			"step_order": order,
		}

	def _progress(self, name: str) -> dict:
		"""Progress by declared steps completed, in this attempt or earlier ones."""
		done = sum(1 for n in self.declared if (self._records.get(n) or {}).get("status") == COMPLETED)
		return {
			"progress": 100 * done / len(self.declared),
			"progress_message": f"Step {name} completed ({done}/{len(self.declared)})",
		}
