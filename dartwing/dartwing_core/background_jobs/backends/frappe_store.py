"""The engine's Store over frappe.db.

Transactions: the engine's transaction is a savepoint inside a caller's open transaction, and a
transaction of its own (COMMIT or ROLLBACK, no savepoint) otherwise. It commits only work that is its own: in a
web request, or when the caller already holds uncommitted writes, the caller's commit carries the
job row, and the queue message and realtime events wait for that commit (enqueue_after_commit),
so a job never runs for a transaction that rolled back."""

import functools
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import frappe
from frappe.query_builder import Order
from frappe.query_builder.functions import Count
from frappe.utils import now_datetime
from pypika import analytics, functions
from pypika.terms import Case, Field, LiteralValue

from .. import schema
from ..errors import UniqueViolation, ValidationError
from ..ports import (
	GROUP_INDEX,
	Change,
	Filter,
	Measure,
	aggregate_by_group_index,
	compare_and_set_in_steps,
	compare_and_set_many_in_steps,
	measured,
	order_terms,
	percentile_of,
)

_SAVEPOINT = "dartwing_tx"
_NO_LIMIT = 2**63 - 1


# Rows that Frappe deletes with the document they refer to (frappe.model.delete_doc), and rows it
# keeps but unlinks (an e-mail or an activity outlives the document it was about).
DELETED_WITH_DOCUMENT = (
	("Comment", "reference_doctype", "reference_name"),
	("ToDo", "reference_type", "reference_name"),
	("DocShare", "share_doctype", "share_name"),
	("Document Follow", "ref_doctype", "ref_docname"),
	("Tag Link", "document_type", "document_name"),
	("Version", "ref_doctype", "docname"),
	("View Log", "reference_doctype", "reference_name"),
	("Notification Log", "document_type", "document_name"),
	("Email Unsubscribe", "reference_doctype", "reference_name"),
	("Communication Link", "link_doctype", "link_name"),
)
UNLINKED_FROM_DOCUMENT = (
	("Communication", "reference_doctype", "reference_name"),
	("Activity Log", "reference_doctype", "reference_name"),
	("Activity Log", "timeline_doctype", "timeline_name"),
)


@contextmanager
def _refusable_insert() -> Iterator[None]:
	"""An insert that may be refused: a unique violation becomes UniqueViolation, and on
	PostgreSQL, where a failed statement aborts its transaction, a savepoint keeps the rest."""
	postgres = frappe.db.db_type == "postgres"
	if postgres:
		frappe.db.savepoint("dartwing_insert")
	try:
		yield
	except Exception as exc:
		if postgres:
			frappe.db.rollback(save_point="dartwing_insert")
		if _is_unique_violation(exc):
			raise UniqueViolation(str(exc)) from exc
		raise


def _not_null(doctype: str, values: dict) -> dict:
	"""None as 0 in numeric fields, as Frappe writes a document: its Int, Check and Float columns
	are NOT NULL (the standalone tables keep NULL)."""
	numeric = schema.numeric_fields(doctype)
	return {k: 0 if v is None and k in numeric else v for k, v in values.items()}


def in_open_transaction() -> bool:
	"""True when the current commit is not ours to make: a web request (Frappe commits it at the
	end), a handler running (its transaction is its own, whatever it wrote), or a caller's
	uncommitted writes. Frappe counts only statements starting with insert/update/delete, so a
	handler's `select ... for update` alone would not show."""
	in_request = getattr(frappe.local, "request", None) is not None and not getattr(frappe.local, "job", None)
	return (
		in_request
		or getattr(frappe.local, "dartwing_in_handler", False)
		or bool(frappe.db.transaction_writes)
	)


def _commit() -> None:
	"""frappe.db.commit() without the START TRANSACTION it sends after COMMIT: autocommit is off,
	so the next statement opens a transaction anyway. One round trip less per transition; the
	commit hooks (realtime events, enqueue_after_commit) run as in Frappe's."""
	db = frappe.db
	db.before_rollback.reset()
	db.after_rollback.reset()
	db.before_commit.run()
	db.sql("commit")
	db.after_commit.run()


def _in_site(method):
	"""Run a store method with a site connection (opened for threads that have none)."""

	@functools.wraps(method)
	def wrapper(self, *args, **kwargs):
		with self._site():
			return method(self, *args, **kwargs)

	return wrapper


def _written(method):
	"""A write outside transaction() is a transaction of its own, as on the standalone store:
	progress saved by a worker must be committed, or its events (which wait for the commit of
	open writes) would all arrive at the end of the job."""

	@functools.wraps(method)
	def wrapper(self, *args, **kwargs):
		with self.transaction():
			return method(self, *args, **kwargs)

	return wrapper


def _is_unique_violation(exc: Exception) -> bool:
	return any(
		getattr(frappe.db, check)(exc)
		for check in ("is_unique_key_violation", "is_primary_key_violation", "is_duplicate_entry")
		if hasattr(frappe.db, check)
	)


class FrappeStore:
	def __init__(self, site: str, sites_path: str = "."):
		self.site = site
		self.sites_path = sites_path
		self._columns: dict[str, set[str]] = {}

	@contextmanager
	def _site(self) -> Iterator[None]:
		"""frappe.db is per thread: a thread with none (the heartbeat) opens its own connection."""
		if getattr(frappe.local, "db", None) is not None:
			yield
			return
		frappe.init(site=self.site, sites_path=self.sites_path)
		try:
			frappe.connect()
			yield
			frappe.db.commit()
		finally:
			frappe.destroy()

	@contextmanager
	def transaction(self) -> Iterator[None]:
		with self._site():
			depth = getattr(frappe.local, "dartwing_tx_depth", 0)
			if depth:
				yield  # nested: the outer transaction decides
				return
			ours = not in_open_transaction()
			writes_before = frappe.db.transaction_writes
			if not ours:  # ours ends in COMMIT or a full ROLLBACK: no savepoint needed
				frappe.db.savepoint(_SAVEPOINT)
			frappe.local.dartwing_tx_depth = 1
			try:
				yield
			except BaseException:
				if ours:
					frappe.db.rollback()  # also drops the row and gap locks it took
				else:
					frappe.db.rollback(save_point=_SAVEPOINT)
					# Frappe zeroes its write count on any "rollback ..." statement, a savepoint's
					# too: the caller's writes are still open, and the next transaction must not
					# commit them.
					frappe.db.transaction_writes = writes_before
				raise
			finally:
				frappe.local.dartwing_tx_depth = 0
			if ours:
				_commit()
			else:
				frappe.db.release_savepoint(_SAVEPOINT)

	def session(self) -> AbstractContextManager[None]:
		"""frappe.db is already one connection per site and thread."""
		return nullcontext()

	def keep_connection(self) -> AbstractContextManager[None]:
		return nullcontext()  # as session(): frappe.db already is

	@_in_site
	def get(self, doctype: str, name: str, *, for_update: bool = False, latest: bool = False) -> dict | None:
		"""`latest`: read on a connection of its own unless this session reads committed rows
		already: a web request's REPEATABLE READ snapshot would hide a job's later transitions."""
		if latest and not getattr(frappe.db, "_dartwing_read_committed", False):
			return self._apart(lambda: self.get(doctype, name))
		table = frappe.qb.DocType(doctype)
		query = frappe.qb.from_(table).select("*").where(table.name == name)
		if for_update:
			query = query.for_update()
		rows = query.run(as_dict=True)
		return dict(rows[0]) if rows else None

	@_in_site
	def get_with_links(
		self, doctype: str, name: str, links: Mapping[str, tuple[str, Sequence[str]]]
	) -> tuple[dict | None, dict[str, dict | None]]:
		"""One SELECT with a LEFT JOIN per link (a claim's job, organization and job type)."""
		table = frappe.qb.DocType(doctype)
		query = frappe.qb.from_(table).select(table.star).where(table.name == name)
		for n, (field, (other, fields)) in enumerate(links.items()):
			joined = frappe.qb.DocType(other).as_(f"link{n}")
			query = query.left_join(joined).on(joined.name == self._field(table, doctype, field))
			columns = ["name", *fields]
			query = query.select(*(self._field(joined, other, f).as_(f"__link{n}.{f}") for f in columns))
		rows = query.run(as_dict=True)
		if not rows:
			return None, {field: None for field in links}
		row, linked = {}, {}
		for key, value in rows[0].items():
			if not key.startswith("__link"):
				row[key] = value
		for n, (field, (_doctype, fields)) in enumerate(links.items()):
			found = {f: rows[0][f"__link{n}.{f}"] for f in ["name", *fields]}
			linked[field] = found if found["name"] is not None else None
		return row, linked

	@_in_site
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
		table = frappe.qb.DocType(doctype)
		columns = ["*"] if tuple(fields) == ("*",) else [self._field(table, doctype, f) for f in fields]
		query = self._where(frappe.qb.from_(table).select(*columns), table, doctype, filters)
		for field, descending in order_terms(order_by):
			order = Order.desc if descending else Order.asc
			query = query.orderby(self._field(table, doctype, field), order=order)
		if limit is not None:
			query = query.limit(limit)
		if offset:
			if limit is None:
				query = query.limit(_NO_LIMIT)  # MariaDB has no OFFSET without a LIMIT
			query = query.offset(offset)
		if for_update:
			query = query.for_update()
		return [dict(r) for r in query.run(as_dict=True)]

	@_in_site
	def count(self, doctype: str, filters: Sequence[Filter] = ()) -> int:
		table = frappe.qb.DocType(doctype)
		query = self._where(frappe.qb.from_(table).select(Count("*")), table, doctype, filters)
		return int(query.run()[0][0])

	@_in_site
	def count_by(self, doctype: str, field: str, filters: Sequence[Filter] = ()) -> dict[str, int]:
		table = frappe.qb.DocType(doctype)
		column = self._field(table, doctype, field)
		query = frappe.qb.from_(table).select(column, Count("*")).groupby(column)
		return {key: int(n) for key, n in self._where(query, table, doctype, filters).run()}

	@_in_site
	def aggregate(
		self,
		doctype: str,
		measures: Mapping[str, Measure],
		filters: Sequence[Filter] = (),
		group_by: Sequence[str] = (),
	) -> list[dict]:
		return aggregate_by_group_index(self._aggregate_once, doctype, measures, filters, group_by)

	def _aggregate_once(
		self,
		doctype: str,
		measures: Mapping[str, Measure],
		filters: Sequence[Filter],
		group_by: Sequence[str],
		groups: Sequence[tuple] | None = None,
	) -> list[dict]:
		"""The SQL store's query in frappe.qb: plain aggregates in one GROUP BY; a percentile ranks
		each group's values with window functions (MariaDB 10.6 and PostgreSQL have them) in a
		subquery, and keeps the first value with rank * 100 >= p * count (nearest rank). With
		`groups`, rows are grouped by their group's index in it (GROUP_INDEX)."""
		table = frappe.qb.DocType(doctype)
		groups_by = [self._field(table, doctype, f) for f in group_by]
		keys = tuple(group_by)
		if groups is not None:
			# Each group by its index among the known ones: a window sorts integers, not text.
			index = Case()
			for number, group in enumerate(groups):
				same = [f.isnull() if v is None else f == v for f, v in zip(groups_by, group, strict=True)]
				index = index.when(functools.reduce(lambda a, b: a & b, same), LiteralValue(str(number)))
			groups_by, keys = [index], (GROUP_INDEX,)
		spec = [
			(label, function, field, percentile_of(function)) for label, (function, field) in measures.items()
		]
		values = [self._measured_value(table, doctype, function, field) for _, function, field, _ in spec]
		query = self._where(frappe.qb.from_(table), table, doctype, filters)
		if any(percent for *_, percent in spec):
			columns = [g.as_(f"g{i}") for i, g in enumerate(groups_by)]
			columns += [v.as_(f"v{i}") for i, v in enumerate(values)]
			for i, (*_, percent) in enumerate(spec):
				if percent:
					# NULLs rank apart (their own partition) and are not counted.
					rank = analytics.RowNumber().over(*groups_by, values[i].isnull()).orderby(values[i])
					columns += [rank.as_(f"r{i}"), analytics.Count(values[i]).over(*groups_by).as_(f"n{i}")]
			inner = query.select(*columns)
			query = frappe.qb.from_(inner)
			groups_by = [Field(f"g{i}", table=inner) for i in range(len(groups_by))]
			values = [Field(f"v{i}", table=inner) for i in range(len(values))]
		selected = []
		for i, (_, function, field, percent) in enumerate(spec):
			if percent:
				chosen = values[i].isnotnull() & (
					Field(f"r{i}", table=inner) * 100 >= Field(f"n{i}", table=inner) * percent
				)
				selected.append(functions.Min(Case().when(chosen, values[i])))
			elif function == "count" and field == "*":
				selected.append(Count("*"))
			else:
				aggregate = {"count": functions.Count, "sum": functions.Sum, "avg": functions.Avg}
				aggregate |= {"min": functions.Min, "max": functions.Max}
				selected.append(aggregate[function](values[i]))
		query = query.select(*groups_by, *selected)
		if groups_by:
			query = query.groupby(*groups_by)
		out = []
		for row in query.run():
			found = dict(zip(keys, row, strict=False))
			for (label, function, field, _), value in zip(spec, row[len(groups_by) :], strict=True):
				found[label] = measured(function, field, value)
			out.append(found)
		return out

	def _measured_value(self, table, doctype: str, function: str, field):
		"""A column, or the microseconds between two Datetime columns (checked names)."""
		if field == "*":
			if function != "count":
				raise ValidationError("measure", f"{function} needs a field")
			return LiteralValue("1")
		if isinstance(field, str):
			return self._field(table, doctype, field)
		start, end = (self._field(table, doctype, f).name for f in field)
		if frappe.db.db_type == "postgres":
			return LiteralValue(f'CAST(EXTRACT(EPOCH FROM "{end}" - "{start}") * 1000000 AS BIGINT)')
		return LiteralValue(f"TIMESTAMPDIFF(MICROSECOND, `{start}`, `{end}`)")

	@_written
	def insert(self, doctype: str, row: dict) -> None:
		values = _not_null(doctype, schema.complete_row(doctype, row, now_datetime(), self._known(doctype)))
		columns = ", ".join(f"`{c}`" for c in values)
		placeholders = ", ".join(["%s"] * len(values))
		with _refusable_insert():
			frappe.db.sql(
				f"insert into `tab{doctype}` ({columns}) values ({placeholders})", list(values.values())
			)

	@_written
	def insert_many(self, doctype: str, rows: Sequence[dict]) -> None:
		"""frappe.db.bulk_insert: multi-row INSERTs, inside this store's transaction (a savepoint in
		a handler's), so a refused row leaves none of them."""
		if not rows:
			return
		now = now_datetime()
		values = [
			_not_null(doctype, schema.complete_row(doctype, row, now, self._known(doctype))) for row in rows
		]
		fields = list(values[0])
		with _refusable_insert():
			frappe.db.bulk_insert(doctype, fields, [[row[f] for f in fields] for row in values])

	@_written
	def update_all(self, doctype: str, filters: Sequence[Filter], values: dict) -> int:
		table = frappe.qb.DocType(doctype)
		query = frappe.qb.update(table)
		for field, value in _not_null(doctype, values).items():
			query = query.set(self._field(table, doctype, field), value)
		self._where(query, table, doctype, filters).run()
		return frappe.db._cursor.rowcount

	@_written
	def update(self, doctype: str, name: str, values: dict, expect: Sequence[Filter] = ()) -> bool:
		table = frappe.qb.DocType(doctype)
		query = frappe.qb.update(table)
		for field, value in _not_null(doctype, values).items():
			query = query.set(self._field(table, doctype, field), value)
		query = self._where(query.where(table.name == name), table, doctype, expect)
		try:
			query.run()
		except Exception as exc:
			if _is_unique_violation(exc):
				raise UniqueViolation(str(exc)) from exc
			raise
		if frappe.db._cursor.rowcount:
			return True
		# MariaDB counts changed rows, not matched ones: a write of equal values still matched.
		# A locking read sees the row as committed now; a plain one could read an old snapshot
		# (REPEATABLE READ) and report a lost compare-and-set as won.
		check = frappe.qb.from_(table).select(table.name).where(table.name == name).for_update()
		return bool(self._where(check, table, doctype, expect).run())

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
		return compare_and_set_in_steps(self, doctype, name, values, expect, record, then_read)

	def compare_and_set_many(self, doctype: str, changes: Sequence[Change]) -> list[bool]:
		return compare_and_set_many_in_steps(self, doctype, changes)

	def update_apart(self, doctype: str, name: str, values: dict, expect: Sequence[Filter] = ()) -> bool:
		"""Progress and heartbeats: committed at once even while a handler's own writes are open,
		so they neither wait for the handler's commit nor lock the job row until it."""
		if getattr(frappe.local, "db", None) is None or not in_open_transaction():
			return self.update(doctype, name, values, expect)
		try:
			return self._apart(lambda: self.update(doctype, name, values, expect))
		except frappe.QueryTimeoutError:
			# This very transaction holds the row (a job run inline, inside an open transaction):
			# the write can only go in it.
			return self.update(doctype, name, values, expect)

	def _apart(self, work):
		"""`work()` on a site connection of its own (a thread, which has no frappe.local: _site
		opens one and commits), waiting up to 3 s for a row lock; its answer or its error."""
		outcome: dict = {}

		def run() -> None:
			try:
				with self._site():
					if frappe.db.db_type == "mariadb":
						frappe.db.sql("set session innodb_lock_wait_timeout = 3")
					outcome["answer"] = work()
			except BaseException as exc:
				outcome["error"] = exc

		thread = threading.Thread(target=run, name="dartwing-apart", daemon=True)
		thread.start()
		thread.join()
		if "error" in outcome:
			raise outcome["error"]
		return outcome["answer"]

	@contextmanager
	def savepoint(self) -> Iterator[None]:
		"""In a handler: a savepoint around one item, rolled back to when the item raises, so a
		failed item's own writes go and the other items' stay in the handler's transaction."""
		if not (getattr(frappe.local, "dartwing_in_handler", False) and getattr(frappe.local, "db", None)):
			yield
			return
		frappe.db.savepoint("dartwing_item")
		writes_before = frappe.db.transaction_writes
		try:
			yield
		except BaseException:
			frappe.db.rollback(save_point="dartwing_item")
			frappe.db.transaction_writes = writes_before  # Frappe zeroes it on any rollback
			raise
		frappe.db.release_savepoint("dartwing_item")

	def commit_work(self) -> None:
		"""In a handler, its transaction holds its own writes and the engine's (a step's record,
		its history note): commit them together, as a handler's frappe.db.commit() would, so a
		retry after a failure or a crash finds the step done with its effects. Elsewhere every
		write of this store has committed already."""
		if getattr(frappe.local, "dartwing_in_handler", False) and getattr(frappe.local, "db", None):
			frappe.db.commit()

	@_written
	def delete(self, doctype: str, filters: Sequence[Filter]) -> int:
		table = frappe.qb.DocType(doctype)
		query = self._where(frappe.qb.from_(table).delete(), table, doctype, filters)
		query.run()
		return frappe.db._cursor.rowcount

	@_written
	def delete_references(self, doctype: str, names: Sequence[str]) -> None:
		"""What `frappe.delete_doc` and its `delete_dynamic_links` remove or unlink for one
		document, for a whole purge batch in a few statements. Files go one by one through
		Frappe, which also removes them from disk."""
		names = list(names)
		if not names:
			return
		attached = {"attached_to_doctype": doctype, "attached_to_name": ("in", names)}
		for file_name in frappe.get_all("File", filters=attached, pluck="name"):
			frappe.delete_doc("File", file_name, ignore_permissions=True, delete_permanently=True)
		for table, doctype_field, name_field in DELETED_WITH_DOCUMENT:
			frappe.db.delete(table, {doctype_field: doctype, name_field: ("in", names)})
		for table, doctype_field, name_field in UNLINKED_FROM_DOCUMENT:
			frappe.db.set_value(
				table,
				{doctype_field: doctype, name_field: ("in", names)},
				{doctype_field: None, name_field: None},
				update_modified=False,
			)

	def _known(self, doctype: str) -> set[str]:
		if doctype not in self._columns:
			with self._site():
				self._columns[doctype] = set(frappe.db.get_table_columns(doctype))
		return self._columns[doctype]

	def _field(self, table, doctype: str, field: str):
		if field not in self._known(doctype):
			raise ValidationError(field, f"is not a field of {doctype}")
		return table[field]

	def _where(self, query, table, doctype: str, filters: Sequence[Filter]):
		"""The same meaning as the standalone store: NULL matches `= None` and `is not set` only."""
		for field, op, value in filters:
			column = self._field(table, doctype, field)
			if op == "=":
				query = query.where(column.isnull() if value is None else column == value)
			elif op == "!=":
				query = query.where(column.isnotnull() if value is None else column != value)
			elif op == "<":
				query = query.where(column < value)
			elif op == "<=":
				query = query.where(column <= value)
			elif op == ">":
				query = query.where(column > value)
			elif op == ">=":
				query = query.where(column >= value)
			elif op in ("in", "not in"):
				items = list(value)
				if not items:  # SQL has no empty IN list: nothing is in it, everything is not
					query = query.where(column.isnull() & column.isnotnull()) if op == "in" else query
				else:
					query = query.where(column.isin(items) if op == "in" else column.notin(items))
			elif op == "is":
				query = query.where(column.isnotnull() if value == "set" else column.isnull())
			else:
				raise ValidationError(field, f"unsupported filter operator {op!r}")
		return query


def read_committed() -> None:
	"""Run this session at READ COMMITTED, as the standalone store does: a checkpoint must see a
	cancel committed after the job started, which REPEATABLE READ (MariaDB's default) hides.
	It takes effect from the next transaction: the claim's own commit starts it, before the
	handler runs (the claim compares and sets, so an older snapshot cannot mislead it)."""
	if getattr(frappe.db, "_dartwing_read_committed", False):
		return  # this connection is set already (a dartwing-worker child keeps it across jobs)
	if frappe.db.db_type == "mariadb" and not in_open_transaction():
		frappe.db.sql("set session transaction isolation level read committed")
		frappe.db._dartwing_read_committed = True
