"""The four ports a backend implements (Store, Queue, Events, Access). The engine decides; a
backend only translates.

Filters follow Frappe's `get_all` shape, a list of (field, operator, value) with operators
=, !=, <, <=, >, >=, in, not in, is ("set" / "not set"), so the Frappe backend passes them through.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from .errors import PermissionDenied, ValidationError

Filter = tuple[str, str, Any]
# What Store.aggregate computes: (function, field). Functions: count, sum, avg, min, max, and pNN,
# the nearest-rank NNth percentile (the smallest value with at least NN% of values at or below
# it). The field is a column, "*" (count only), or a pair (start, end) of Datetime columns: the
# seconds from start to end. NULLs are skipped, as SQL's aggregates skip them.
Measure = tuple[str, str | tuple[str, str]]


AGGREGATES = ("count", "sum", "avg", "min", "max")


def percentile_of(function: str) -> int | None:
	"""95 for "p95": the percentile a Measure's function names; None for the plain aggregates.
	Whole percents from 1 to 100, so stores compare ranks in integers (rank * 100 >= p * n)."""
	if function in AGGREGATES:
		return None
	digits = function[1:] if function.startswith("p") else ""
	if digits.isdigit() and 1 <= int(digits) <= 100 and digits == str(int(digits)):
		return int(digits)
	raise ValidationError("measure", f"unknown aggregate {function!r}")


def measured(function: str, field, value):
	"""A database's answer to a Measure as Store.aggregate gives it: counts int, durations
	(kept in the database as microseconds) and averages float seconds, None for no values."""
	if value is None:
		return None
	if function == "count":
		return int(value)
	if not isinstance(field, str):
		return float(value) / 1_000_000
	if function == "avg" or isinstance(value, Decimal):
		return float(value)
	return value


def organization_scope(organization: str | None, organizations: list[str] | None) -> list[Filter]:
	"""Filters for one organization, or the set a caller may see (None: all), refusing one
	outside that set: what list, metrics and schedules read."""
	if organizations is None:
		return [("organization", "=", organization)] if organization else []
	if organization and organization not in organizations:
		raise PermissionDenied(f"no access to organization {organization!r}")
	return [("organization", "in", [organization] if organization else organizations)]


# The key Store.aggregate's one-query form gives each row when asked to rank within known groups.
GROUP_INDEX = "__group"


def aggregate_by_group_index(aggregate_once, doctype: str, measures, filters, group_by) -> list[dict]:
	"""Store.aggregate for a store whose `aggregate_once(doctype, measures, filters, group_by,
	groups=None)` runs one query. Grouped percentiles take two: the groups and the plain measures,
	then the ranks with each group named by its index in `groups` (an integer CASE), not by its
	text. MariaDB sorts a window's rows with their text columns at full width: ranking a day's
	40,000 durations by job type took 200 ms by name and 40 ms by index on a million-job table."""
	percentiles = {label: m for label, m in measures.items() if percentile_of(m[0])}
	if not (group_by and percentiles):
		return aggregate_once(doctype, measures, filters, group_by)
	plain = {label: m for label, m in measures.items() if label not in percentiles}
	rows = aggregate_once(doctype, plain or {GROUP_INDEX: ("count", "*")}, filters, group_by)
	groups = [tuple(row[field] for field in group_by) for row in rows]
	for ranked in aggregate_once(doctype, percentiles, filters, group_by, groups) if groups else ():
		index = ranked.pop(GROUP_INDEX)
		if index is not None:  # None: a group that a commit between the two queries added
			rows[index].update(ranked)
	return [{key: row.get(key) for key in (*group_by, *measures)} for row in rows]


def order_terms(order_by: str | None) -> list[tuple[str, bool]]:
	"""`"creation desc, name"` as [(field, descending)]: the one order_by syntax stores accept."""
	terms = []
	for part in (order_by or "").split(","):
		if part.strip():
			field, _, direction = part.strip().partition(" ")
			terms.append((field, direction.strip().lower() == "desc"))
	return terms


class Store(Protocol):
	def transaction(self) -> AbstractContextManager[None]:
		"""All calls inside run in one transaction; it commits on exit, rolls back on error."""

	def session(self) -> AbstractContextManager[None]:
		"""Calls inside share one connection (a claim, a settle); each write still commits on its
		own. Keep it short: a read may hold its transaction open until the session's next write."""

	def keep_connection(self) -> AbstractContextManager[None]:
		"""For a worker's loop: this thread's sessions reuse one connection rather than taking and
		resetting one each time. A session that fails gives it up; a forked child never uses it."""

	def get(self, doctype: str, name: str, *, for_update: bool = False, latest: bool = False) -> dict | None:
		"""`latest`: the latest committed row, without a lock, even where the caller's transaction
		reads an older snapshot (a Frappe web request at REPEATABLE READ): what a waiter reads."""

	def get_with_links(
		self, doctype: str, name: str, links: Mapping[str, tuple[str, Sequence[str]]]
	) -> tuple[dict | None, dict[str, dict | None]]:
		"""The row, and the rows its Link fields point at, read together. `links` is
		{field: (linked doctype, fields wanted besides name)}; the answer {field: row, or None when
		the link is empty or points at nothing}."""

	def get_all(
		self,
		doctype: str,
		filters: Sequence[Filter] = (),
		fields: Sequence[str] = ("*",),
		order_by: str | None = None,
		limit: int | None = None,
		offset: int = 0,
		*,
		for_update: bool = False,
	) -> list[dict]:
		"""`for_update`: a locking read, which sees the latest committed rows even where the
		session's snapshot is older (Frappe's web requests run at REPEATABLE READ)."""

	def count(self, doctype: str, filters: Sequence[Filter] = ()) -> int: ...

	def count_by(self, doctype: str, field: str, filters: Sequence[Filter] = ()) -> dict[str, int]: ...

	def aggregate(
		self,
		doctype: str,
		measures: Mapping[str, Measure],
		filters: Sequence[Filter] = (),
		group_by: Sequence[str] = (),
	) -> list[dict]:
		"""Aggregates computed by the database, so metrics never load rows: one dict per group
		(the group_by fields and a key per measure), one in all without group_by. Durations and
		averages are floats (seconds), counts ints; a measure over no values is None."""

	def insert(self, doctype: str, row: dict) -> None:
		"""Raises errors.UniqueViolation when a unique index refuses the row."""

	def insert_many(self, doctype: str, rows: Sequence[dict]) -> None:
		"""insert() of rows with the same fields, in as few statements as the database allows (a
		job's items). Raises errors.UniqueViolation, having written none, when one is refused."""

	def update(self, doctype: str, name: str, values: dict, expect: Sequence[Filter] = ()) -> bool:
		"""Compare-and-set: update only when every `expect` filter holds; True when a row changed."""

	def update_all(self, doctype: str, filters: Sequence[Filter], values: dict) -> int:
		"""Set `values` on every row the filters match, in one statement: a batch of item
		outcomes. Returns the rows matched."""

	def compare_and_set(
		self,
		doctype: str,
		name: str,
		values: dict,
		expect: Sequence[Filter],
		*,
		record: tuple[str, dict],
		then_read: tuple[str, Sequence[Filter], Sequence[str]] | None = None,
	) -> list[dict] | None:
		"""One transaction: update() as a compare-and-set and, only when it changed the row, insert
		`record` (doctype, row) and read `then_read` (doctype, filters, fields). None when the
		compare-and-set lost (nothing written), else the rows read ([] without `then_read`).
		A status transition is this; a store may send it to its database all at once."""

	def compare_and_set_many(self, doctype: str, changes: Sequence["Change"]) -> list[bool]:
		"""compare_and_set() of each change (without then_read), all in one transaction: True where
		it won (its row and record written), False where it lost (nothing of it written). An error
		writes none of them. For the scheduler's batches; a store may send them all at once."""

	def update_apart(self, doctype: str, name: str, values: dict, expect: Sequence[Filter] = ()) -> bool:
		"""update(), committed at once and apart from any transaction the caller holds open: for
		progress and heartbeats, which watchers must see while the handler's own work is pending."""

	def savepoint(self) -> AbstractContextManager[None]:
		"""Undo what the running handler wrote inside when it raises (one item of ctx.each), and
		keep the rest of its work. A store whose handlers never write through it: nothing."""

	def commit_work(self) -> None:
		"""Make what the running handler wrote so far durable, with the engine's rows written since
		(a completed step's record): a later attempt then finds both. A store whose writes commit
		on their own, with handlers that never write through it, has nothing to do."""

	def delete(self, doctype: str, filters: Sequence[Filter]) -> int: ...

	def delete_references(self, doctype: str, names: Sequence[str]) -> None:
		"""Rows kept elsewhere about these deleted documents (on Frappe: their comments, files,
		assignments, shares, tags, follows); the purge calls it in the same transaction."""


def compare_and_set_in_steps(
	store: Store,
	doctype: str,
	name: str,
	values: dict,
	expect: Sequence[Filter],
	record: tuple[str, dict],
	then_read: tuple[str, Sequence[Filter], Sequence[str]] | None,
) -> list[dict] | None:
	"""Store.compare_and_set as separate calls in one transaction: any store can do it this way."""
	with store.transaction():
		if not store.update(doctype, name, values, expect):
			return None
		store.insert(*record)
		return store.get_all(*then_read) if then_read else []


class Change(NamedTuple):
	"""One compare-and-set of Store.compare_and_set_many: compare_and_set()'s arguments, and `also`,
	more (doctype, row) records inserted after `record` only when it won (a new job's first log
	row, with the job a schedule's move creates)."""

	name: str
	values: dict
	expect: Sequence[Filter]
	record: tuple[str, dict]
	also: tuple[tuple[str, dict], ...] = ()


def compare_and_set_many_in_steps(store: Store, doctype: str, changes: Sequence[Change]) -> list[bool]:
	"""Store.compare_and_set_many as separate calls in one transaction: any store can do it this way."""
	won = []
	with store.transaction():
		for c in changes:
			won.append(
				compare_and_set_in_steps(store, doctype, c.name, c.values, c.expect, c.record, None)
				is not None
			)
			for row in c.also if won[-1] else ():
				store.insert(*row)
	return won


class Message(NamedTuple):
	"""What Queue.enqueue sends, as one item of Queue.enqueue_many."""

	job_id: str
	queue_job_id: str
	priority: str
	timeout: int


class Queue(Protocol):
	def enqueue(self, job_id: str, queue_job_id: str, priority: str, timeout: int) -> None: ...

	def enqueue_many(self, messages: Sequence[Message]) -> None:
		"""enqueue() of each, in as few round trips as the queue allows (the scheduler's batches)."""

	def is_waiting(self, queue_job_id: str) -> bool:
		"""True while the message is queued, scheduled or being worked on."""

	def waiting(self, queue_job_ids: Sequence[str]) -> set[str]:
		"""Which of these messages is_waiting() would say True for, asked all at once."""

	def stop(self, queue_job_id: str) -> None:
		"""Hard-stop the process running this message, if any."""


class Events(Protocol):
	def publish(self, event: str, payload: dict) -> None: ...

	def publish_many(self, events: Sequence[tuple[str, dict]]) -> None:
		"""(event, payload) pairs in one round trip: a scheduler batch's hundred status changes."""

	def subscribe(
		self, job_id: str | None = None, organization: str | None = None, idle: float = 0.5
	) -> Iterator[dict | None]:
		"""The events of one job or organization ({"event": ..., **the API's job fields}), and None
		once the subscription is in place and after each `idle` seconds of silence: what was
		published before is not heard, so a caller reads the database on the first None."""


class Access(Protocol):
	"""Who a job runs as. Checked again when the job starts: access may have been lost since submit."""

	# Rows the claim reads with the job for check_run, in the same query: {job field: (doctype,
	# fields)}, as Store.get_with_links takes them.
	claim_links: Mapping[str, tuple[str, Sequence[str]]]

	def check_run(self, job: dict, linked: Mapping[str, dict | None]) -> None:
		"""Raise errors.PermissionDenied when the job's owner may no longer run it. `linked`: the
		claim_links rows (None where the link points at nothing)."""

	def run_as(self, user: str) -> AbstractContextManager[None]:
		"""Run the handler with `user`'s identity and permissions."""
