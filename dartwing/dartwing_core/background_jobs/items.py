"""A job's items (ctx.each): every item recorded once, then processed one by one with its outcome
saved, so a crash resumes with the items not yet done and a retry runs only the failed ones.

- Recording: Background Job Item rows (a doctype of their own: a job may have 100,000), written
  in batches in one transaction with a SHA-256 checksum of each item's JSON; a repeated key (the
  unique index on job and key refuses it), an empty or too long key, an item that is not JSON or
  more than `max_items` items write none. The items are read twice (recorded, then processed),
  never held: `items` is a list, a range or a function returning a fresh iterable.
- Outcomes (Completed with the JSON result, Failed with the error, Skipped with SkipItem's reason)
  are written in batches, one UPDATE per distinct outcome, with the job's live counts, at least
  every `item_flush_interval` seconds: a crash redoes at most that much work. On Frappe each item
  runs in a savepoint (a failed item's own writes go) and a batch commits with the handler's work.
- An item is run when it is Pending or Failed, or when its data changed (checksum) since it was
  done or skipped.
"""

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import states
from .engine import check_name
from .errors import ItemsFailed, JobCanceled, SkipItem, UniqueViolation, ValidationError
from .steps import encode_result
from .transitions import ITEM, JOB

if TYPE_CHECKING:
	from .engine import Engine
	from .progress import JobContext

PENDING, COMPLETED, FAILED, SKIPPED = "Pending", "Completed", "Failed", "Skipped"
ITEM_STATUSES = (PENDING, COMPLETED, FAILED, SKIPPED)
COUNTERS = {COMPLETED: "items_done", FAILED: "items_failed", SKIPPED: "items_skipped"}
RECORD_BATCH = 1000  # rows an INSERT statement carries
PAGE = 1000  # recorded rows read at a time while processing
MAX_BUFFERED = 10_000  # outcomes held before a write, however fast the items are


def item_key(key: Callable[[Any], Any] | None, item: Any, index: int) -> str:
	"""The item's key: `key(item)` (a string or an integer), or its position."""
	value = index if key is None else key(item)
	if isinstance(value, int) and not isinstance(value, bool):
		value = str(value)
	if not isinstance(value, str):
		raise ValidationError(
			f"key of item {index}", f"must be a string or an integer, not {type(value).__name__}"
		)
	check_name(f"key of item {index}", value)
	return value


# One encoder for every item (json.dumps with options builds a new one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def checksum(item: Any, index: int) -> str:
	try:
		encoded = _CANONICAL.encode(item)
	except (TypeError, ValueError, RecursionError) as exc:
		raise ValidationError(f"item {index}", f"is not JSON-serializable: {exc}") from None
	return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Items:
	"""ctx.each of one attempt. `job` is the run's own row (the context's), kept current."""

	engine: "Engine"
	job: dict
	attempt: int
	max_failed_items: int = 0
	current_key: str | None = None
	_ran: bool = False

	def run(
		self, ctx: "JobContext", items, process: Callable[[Any], Any], key: Callable[[Any], Any] | None
	) -> dict:
		if self._ran:
			raise ValidationError("each", "runs once per attempt: a job has one list of items")
		self._ran = True
		source = _source(items)
		if not callable(process):
			raise ValidationError("process", "must be a function of one item")
		recorded_now = not self.job.get("items_total") and not self._recorded()
		if recorded_now:
			self._record(source(), key)
		counts = {field: int(self.job.get(field) or 0) for field in ("items_total", *COUNTERS.values())}
		buffer: list[tuple[str, dict]] = []  # (row name, values)
		last_write = time.monotonic()
		try:
			for index, item, row in self._paired(source(), key):
				# Recorded moments ago from this very list: its checksums are this list's.
				digest = row["checksum"] if recorded_now else checksum(item, index)
				if row["status"] in (COMPLETED, SKIPPED) and row["checksum"] == digest:
					continue
				ctx.checkpoint()
				values = self._process(process, item, row)
				if row["checksum"] != digest:
					values["checksum"] = digest
				buffer.append((row["name"], values))
				_count(counts, row["status"], values["status"])
				self._report(ctx, counts)
				if len(buffer) >= MAX_BUFFERED or time.monotonic() - last_write >= self._interval:
					self._write(buffer, counts)
					buffer, last_write = [], time.monotonic()
		finally:
			self.current_key = None
			if buffer:
				self._write(buffer, counts)  # what ran before a cancel or a timeout stays done
		summary = {
			"total": counts["items_total"],
			"done": counts["items_done"],
			"failed": counts["items_failed"],
			"skipped": counts["items_skipped"],
		}
		if summary["failed"] > self.max_failed_items:
			raise ItemsFailed(
				f"{summary['failed']} of {summary['total']} items failed (max_failed_items "
				f"{self.max_failed_items}); a retry runs the failed items again"
			)
		return summary

	@property
	def _interval(self) -> float:
		return self.engine.settings.item_flush_interval

	def _recorded(self) -> bool:
		"""An empty list records nothing; its next attempt records it again (nothing to redo)."""
		return bool(
			self.engine.store.get_all(ITEM, [("background_job", "=", self.job["name"])], ["name"], limit=1)
		)

	def _record(self, items: Iterable, key) -> None:
		"""Every item once, all or none: a bad key or item anywhere in the list writes nothing."""
		limit = self.engine.settings.max_items
		total = 0
		batch: list[dict] = []
		try:
			with self.engine.store.transaction():
				for index, item in enumerate(items):
					if index >= limit:
						raise ValidationError("items", f"are more than {limit} (DARTWING_MAX_ITEMS)")
					batch.append(
						{
							"name": f"{self.job['name']}-{index}",
							"background_job": self.job["name"],
							"item_index": index,
							"item_key": item_key(key, item, index),
							"status": PENDING,
							"checksum": checksum(item, index),
						}
					)
					if len(batch) >= RECORD_BATCH:
						self.engine.store.insert_many(ITEM, batch)
						batch = []
					total = index + 1
				self.engine.store.insert_many(ITEM, batch)
				counts = {"items_total": total, **dict.fromkeys(COUNTERS.values(), 0)}
				self._save_counts(counts)
		except UniqueViolation:
			raise ValidationError(
				"key", "repeats: every item needs a key of its own within the job (none was recorded)"
			) from None
		self.job.update(counts)
		self.engine.store.commit_work()

	def _paired(self, items: Iterable, key):
		"""Each item with its recorded row, read a page at a time; the list must be the one recorded."""
		page: list[dict] = []
		total = int(self.job.get("items_total") or 0)
		for index, item in enumerate(items):
			if index >= total:
				raise ValidationError("items", f"are more than the {total} recorded in an earlier attempt")
			if not page or page[-1]["item_index"] < index:
				page = self.engine.store.get_all(
					ITEM,
					[
						("background_job", "=", self.job["name"]),
						("item_index", ">=", index),
						("item_index", "<", index + PAGE),
					],
					["name", "item_index", "item_key", "status", "checksum"],
					order_by="item_index asc",
				)
				position = 0
			row = page[position]
			position += 1
			this_key = item_key(key, item, index)
			if row["item_key"] != this_key:
				raise ValidationError(
					f"key of item {index}",
					f"is {this_key!r}, but {row['item_key']!r} was recorded: the list must not change "
					"between attempts",
				)
			self.current_key = f"{self.job['name']}:{this_key}"
			yield index, item, row

	def _process(self, process: Callable, item: Any, row: dict) -> dict:
		"""Run one item (in a savepoint on Frappe); its outcome as the values to save."""
		values = {"attempt": self.attempt, "result": None, "error_type": None, "error_message": None}
		try:
			with self.engine.store.savepoint():
				result = process(item)
				encoded = None if result is None else encode_result("item result", result)
				values.update(status=COMPLETED, result=encoded)
		except SkipItem as exc:
			values.update(status=SKIPPED, error_message=str(exc)[:10000])
		except Exception as exc:
			values.update(status=FAILED, error_type=type(exc).__name__, error_message=str(exc)[:10000])
		return values

	def _write(self, buffer: list[tuple[str, dict]], counts: dict) -> None:
		"""A batch of outcomes and the job's counts in one transaction: one UPDATE per distinct
		outcome (no-op items share one), chunked so IN lists stay short."""
		now = self.engine.now()
		groups: dict[tuple, tuple[dict, list[str]]] = {}
		for name, values in buffer:
			values = {**values, "completed_at": now}
			groups.setdefault(tuple(values.items()), (values, []))[1].append(name)
		with self.engine.store.transaction():
			for values, names in groups.values():
				for start in range(0, len(names), PAGE):
					self.engine.store.update_all(ITEM, [("name", "in", names[start : start + PAGE])], values)
			self._save_counts(counts)
		self.job.update(counts)
		self.engine.store.commit_work()

	def _save_counts(self, counts: dict) -> None:
		progress = {"progress": self.job["progress"], "progress_message": self.job.get("progress_message")}
		owned = self.engine.store.update(
			JOB,
			self.job["name"],
			{**counts, **progress},
			expect=[("status", "=", states.RUNNING), ("queue_job_id", "=", self.job["queue_job_id"])],
		)
		if not owned:
			raise JobCanceled("this run no longer owns the job")

	def _report(self, ctx: "JobContext", counts: dict) -> None:
		if ctx.reports_own_progress or not counts["items_total"]:
			return
		finished = counts["items_done"] + counts["items_failed"] + counts["items_skipped"]
		ctx._report(
			100 * finished / counts["items_total"],
			f"{finished}/{counts['items_total']} items ({counts['items_failed']} failed)",
			own=False,
			persist=False,  # each batch's _save_counts writes it with the counts
		)


def _count(counts: dict, before: str, after: str) -> None:
	if before in COUNTERS:
		counts[COUNTERS[before]] -= 1
	counts[COUNTERS[after]] += 1


def _source(items) -> Callable[[], Iterable]:
	"""The items as a function giving a fresh iterable: they are read twice, and never held."""
	if callable(items):
		return items
	try:
		one_shot = iter(items) is items
	except TypeError:
		raise ValidationError("items", f"must be iterable, not {type(items).__name__}") from None
	if one_shot:
		raise ValidationError(
			"items",
			"are read twice (recorded, then processed): pass a list, a range or a function returning "
			"a fresh iterator, not a one-shot iterator or generator",
		)
	return lambda: items
