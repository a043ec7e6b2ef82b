"""Store port over SQLAlchemy Core: SQLite by default, MariaDB/MySQL or PostgreSQL by URL. The
store's methods; the URL (sql_url.py), the tables (sql_schema.py), connection state
(sql_connections.py) and the execution fast path (sql_execution.py) live beside it."""

import os
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import make_url

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
from .sql_connections import (
	INHERITED,
	KeptConnection,
	ThreadState,
	allow_multi_statements,
	give_up_interrupted_connections,
	make_sqlite_safe,
	mark_read_only,
)
from .sql_execution import Prepared, end_transaction, run_batch
from .sql_schema import build_metadata
from .sql_url import normalize_url

_MAX_STATEMENTS = 1024


class SqlStore:
	def __init__(self, url: str):
		self.url = normalize_url(url)
		self.dialect = make_url(self.url).get_backend_name()
		options = {"pool_recycle": 1800}
		if self.dialect == "sqlite":
			options["connect_args"] = {"timeout": 30, "check_same_thread": False}
		else:
			# What compare-and-set and a session's read-then-write rely on, whatever the server's default.
			options["isolation_level"] = "READ COMMITTED"
		if self.dialect == "mysql":
			options["paramstyle"] = "format"  # positional, as a batch of statements joins their parameters
		self.engine = sa.create_engine(self.url, **options)
		give_up_interrupted_connections(self.engine)
		if self.dialect == "sqlite":
			make_sqlite_safe(self.engine)
		# MySQL's drivers send several statements at once only if the connection says so: what
		# compare_and_set's batch needs. Every statement this store sends is compiled
		# by SQLAlchemy with bound parameters; none is built from input.
		self._batches = self.dialect == "mysql"
		if self._batches:
			allow_multi_statements(self.engine)
		self.metadata, self.tables = build_metadata()
		self._statements: dict[tuple, Prepared] = {}
		self._local = ThreadState()
		# A forked RQ work-horse must not share its parent's sockets or file handles.
		ref = weakref.ref(self)
		os.register_at_fork(after_in_child=lambda: (s := ref()) and s._after_fork_in_child())

	def _after_fork_in_child(self) -> None:
		"""Connections the parent holds or pools belong to the parent: never use, reset or close
		them here. They stay referenced so they are never collected either: a reset would send a
		ROLLBACK down the parent's socket, and mysqlclient closes a collected connection with
		COM_QUIT, which ends the parent's session on the server."""
		state = self._local
		if state.kept is not None:
			INHERITED.append(state.kept)
			state.kept = None
		for held in (state.held, state.conn):
			if held is not None:
				INHERITED.append(held)
		state.held = state.conn = None
		INHERITED.append(self.engine.pool)  # dispose() below only drops the engine's reference
		self.engine.dispose(close=False)

	def create_schema(self) -> None:
		"""Create missing tables and indexes (also on existing tables), and add columns new doctype
		fields need."""
		quote = self.engine.dialect.identifier_preparer.quote
		if self.dialect == "sqlite":
			# Stored in the file from now on; outside any transaction, as SQLite requires.
			raw = self.engine.raw_connection()
			try:
				raw.driver_connection.execute("PRAGMA journal_mode=WAL")
			finally:
				raw.close()
		with self.engine.begin() as conn:
			self.metadata.create_all(conn, checkfirst=True)
			inspector = sa.inspect(conn)
			for doctype, table in self.tables.items():
				present = {c["name"] for c in inspector.get_columns(table.name)}
				for column in table.columns:
					if column.name not in present:
						kind = column.type.compile(dialect=self.engine.dialect)
						conn.exec_driver_sql(
							f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
						)
				# create_all makes a new table's indexes only: an index added to the doctype later
				# (dartwing_indexes, search_index) reaches existing tables here.
				indexed = {index["name"] for index in inspector.get_indexes(table.name)}
				for index in table.indexes:
					if index.name not in indexed:
						index.create(conn)
				for fields in schema.dropped_indexes(doctype):
					name = schema.index_name("", fields, "index")
					if name in indexed:  # replaced by a wider one; a detached copy, to drop it by name
						detached = sa.Table(table.name, sa.MetaData(), *(sa.Column(f) for f in fields))
						sa.Index(name, *detached.columns).drop(conn)

	def drop_schema(self) -> None:
		self.metadata.drop_all(self.engine, checkfirst=True)

	@contextmanager
	def transaction(self) -> Iterator[None]:
		if self._local.conn is not None:
			yield
			return
		with self._begin() as conn:
			self._local.conn = conn
			try:
				yield
			finally:
				self._local.conn = None

	@contextmanager
	def session(self) -> Iterator[None]:
		"""Hold one connection for a short run of calls (a claim, a settle) instead of checking one
		out of the pool for every statement. Each write commits on its own; reads see what others
		committed (READ COMMITTED), but on MariaDB and PostgreSQL a read leaves its transaction open
		until the next write or the end of the session, so keep sessions short."""
		if self._local.held is not None or self._local.conn is not None:
			yield
			return
		kept = self._local.kept
		if kept is None:
			with self.engine.connect() as conn:
				self._local.held = conn
				try:
					yield
				finally:
					self._local.held = None
			return
		conn = kept.take(self.engine)
		self._local.held = conn
		try:
			yield
		except BaseException:
			kept.drop()  # whatever state the error left it in, the pool's reset cleans it up
			raise
		finally:
			self._local.held = None
		kept.end_session()

	@contextmanager
	def keep_connection(self) -> Iterator[None]:
		"""For a worker's loop: this thread's sessions (a claim, a settle per job) reuse one
		connection instead of checking one out of the pool and resetting it for each session,
		which costs two round trips and the pool's bookkeeping per job."""
		if self._local.kept is not None:
			yield
			return
		kept = self._local.kept = KeptConnection()
		try:
			yield
		finally:
			self._local.kept = None
			kept.drop()

	def maintain(self) -> None:
		"""Periodic upkeep, called by the scheduler loop: on SQLite, move the WAL into the database
		without blocking writers, so submits never pay for it."""
		if self.dialect != "sqlite":
			return
		raw = self.engine.raw_connection()
		try:
			raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
		finally:
			raw.close()

	@contextmanager
	def rehearsal(self) -> Iterator[None]:
		"""Like transaction(), but always rolled back: real statements, nothing kept."""
		if self._local.conn is not None or self._local.held is not None:
			raise RuntimeError("a rehearsal cannot run inside a transaction or a session")
		with self.engine.connect() as conn:
			conn.begin()
			self._local.conn = conn
			try:
				yield
			finally:
				self._local.conn = None
				conn.rollback()

	@contextmanager
	def _connection(self, write: bool) -> Iterator[sa.Connection]:
		current, held = self._local.conn, self._local.held
		if current is not None:
			yield current
		elif write:
			with self._begin() as conn:
				yield conn
		elif held is not None:
			mark_read_only(held, True)
			try:
				yield held
			except BaseException:
				held.rollback()  # leave the session usable for a retry (e.g. after a disconnect)
				raise
			if self.dialect == "sqlite":
				held.rollback()  # costs nothing: SQLite ran the read without a transaction
			elif not held.in_transaction() and self._local.kept is not None:
				self._local.kept.read_open = True
			# Elsewhere the read's transaction stays open (READ COMMITTED: it pins nothing) until
			# the session's next write joins it or the session ends: one round trip fewer for the
			# usual read-then-write of a claim.
		else:
			with self.engine.connect() as conn:
				mark_read_only(conn, True)
				yield conn
				conn.rollback()

	@contextmanager
	def _begin(self) -> Iterator[sa.Connection]:
		held = self._local.held
		if held is None:
			with self.engine.begin() as conn:
				yield conn
		elif held.in_transaction() and self.dialect != "sqlite":
			try:  # joins the transaction a read of this session left open
				yield held
			except BaseException:
				held.rollback()
				raise
			held.commit()
		else:
			if held.in_transaction():
				held.rollback()
			mark_read_only(held, False)
			try:
				with held.begin():
					yield held
			finally:
				if self._local.kept is not None:
					self._local.kept.read_open = False  # the commit or rollback ended it

	def get(self, doctype: str, name: str, *, for_update: bool = False, latest: bool = False) -> dict | None:
		"""`latest` changes nothing here: sessions read committed rows (READ COMMITTED; SQLite
		takes a snapshot per statement outside a transaction, and writes lock the file in one)."""
		locking = for_update and self.dialect != "sqlite"  # SQLite's writer lock covers the file

		def build() -> sa.Select:
			table = self.tables[doctype]
			query = sa.select(table).where(table.c.name == sa.bindparam("p__name"))
			return query.with_for_update() if locking else query

		statement = self._statement(("get", doctype, locking), build)
		with self._connection(write=for_update) as conn:
			rows = statement.rows(conn, {"p__name": name})
		return rows[0] if rows else None

	def get_with_links(
		self, doctype: str, name: str, links: Mapping[str, tuple[str, Sequence[str]]]
	) -> tuple[dict | None, dict[str, dict | None]]:
		pairs = tuple((field, linked, ("name", *fields)) for field, (linked, fields) in links.items())

		def build() -> sa.Select:
			"""One SELECT with a LEFT JOIN per link; columns labelled `l<i>__<column>`."""
			table = self.tables[doctype]
			columns = [column.label(f"l0__{column.name}") for column in table.c]
			joined = table
			for index, (field, linked, wanted) in enumerate(pairs, 1):
				other = self.tables[linked].alias(f"l{index}")
				joined = joined.outerjoin(other, other.c.name == self._column(table, field))
				columns += [self._column(other, f).label(f"l{index}__{f}") for f in wanted]
			return sa.select(*columns).select_from(joined).where(table.c.name == sa.bindparam("p__name"))

		statement = self._statement(("get_with_links", doctype, pairs), build)
		with self._connection(write=False) as conn:
			rows = statement.rows(conn, {"p__name": name})
		if not rows:
			return None, dict.fromkeys(links)
		split: list[dict] = [{} for _ in range(len(pairs) + 1)]
		for label, value in rows[0].items():
			index, _, column = label.partition("__")
			split[int(index[1:])][column] = value
		return split[0], {
			field: split[i] if split[i]["name"] is not None else None
			for i, (field, *_) in enumerate(pairs, 1)
		}

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
		statement, params = self._select(doctype, filters, fields, order_by, limit, offset, for_update)
		with self._connection(write=for_update) as conn:
			return statement.rows(conn, params)

	def _select(
		self,
		doctype: str,
		filters: Sequence[Filter] = (),
		fields: Sequence[str] = ("*",),
		order_by: str | None = None,
		limit: int | None = None,
		offset: int = 0,
		for_update: bool = False,
	) -> tuple["Prepared", dict]:
		"""get_all's statement and the values to run it with."""
		shape, params = _filter_shape(filters)
		fields = tuple(fields)
		locking = for_update and self.dialect != "sqlite"  # SQLite's writer lock covers the file
		key = ("get_all", doctype, fields, shape, order_by, limit is not None, bool(offset), locking)

		def build() -> sa.Select:
			table = self.tables[doctype]
			columns = [table] if fields == ("*",) else [self._column(table, f) for f in fields]
			query = sa.select(*columns).where(*self._where(table, shape))
			for field, descending in order_terms(order_by):
				column = self._column(table, field)
				query = query.order_by(column.desc() if descending else column.asc())
			if limit is not None:
				query = query.limit(sa.bindparam("p__limit"))
			if offset:
				query = query.offset(sa.bindparam("p__offset"))
			return query.with_for_update() if locking else query

		if limit is not None:
			params["p__limit"] = limit
		if offset:
			params["p__offset"] = offset
		return self._statement(key, build), params

	def count(self, doctype: str, filters: Sequence[Filter] = ()) -> int:
		shape, params = _filter_shape(filters)

		def build() -> sa.Select:
			table = self.tables[doctype]
			return sa.select(sa.func.count()).select_from(table).where(*self._where(table, shape))

		with self._connection(write=False) as conn:
			return self._statement(("count", doctype, shape), build).tuples(conn, params)[0][0]

	def count_by(self, doctype: str, field: str, filters: Sequence[Filter] = ()) -> dict[str, int]:
		shape, params = _filter_shape(filters)

		def build() -> sa.Select:
			table = self.tables[doctype]
			column = self._column(table, field)
			return sa.select(column, sa.func.count()).where(*self._where(table, shape)).group_by(column)

		statement = self._statement(("count_by", doctype, field, shape), build)
		with self._connection(write=False) as conn:
			return dict(statement.tuples(conn, params))

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
		"""Plain aggregates in one GROUP BY. A percentile ranks each group's values with window
		functions (MariaDB 10.2+, PostgreSQL, SQLite 3.25+) in a subquery and keeps the value
		whose rank is the first with rank * 100 >= p * count: nearest rank, in integers. With
		`groups`, rows are grouped by their group's index in it (GROUP_INDEX)."""
		shape, params = _filter_shape(filters)
		group_by, spec = (
			tuple(group_by),
			tuple((k, f, tuple(v) if isinstance(v, list) else v) for k, (f, v) in measures.items()),
		)
		known = None if groups is None else len(groups)
		for index, group in enumerate(groups or ()):
			params |= {f"k{index}_{i}": value for i, value in enumerate(group)}
		statement = self._statement(
			("aggregate", doctype, shape, group_by, spec, known),
			lambda: self._aggregate(doctype, shape, group_by, spec, known),
		)
		with self._connection(write=False) as conn:
			rows = statement.tuples(conn, params)
		keys = group_by if known is None else (GROUP_INDEX,)
		out = []
		for row in rows:
			found = dict(zip(keys, row, strict=False))
			for (label, function, field), value in zip(spec, row[len(keys) :], strict=True):
				found[label] = measured(function, field, value)
			out.append(found)
		return out

	def _aggregate(
		self, doctype: str, shape: tuple, group_by: tuple, spec: tuple, known: int | None = None
	) -> sa.Select:
		table = self.tables[doctype]
		keys = [self._column(table, field).label(f"g{i}") for i, field in enumerate(group_by)]
		if known is not None:
			# Each group by its index among the `known` ones: a window sorts integers, not text.
			columns = [k.element for k in keys]
			same = [
				(
					sa.and_(
						*(c.is_not_distinct_from(sa.bindparam(f"k{g}_{i}")) for i, c in enumerate(columns))
					),
					sa.literal_column(str(g)),  # a literal: a bound value would make the key text
				)
				for g in range(known)
			]
			keys = [sa.case(*same).label("g0")]
		values = [
			self._measured_value(table, function, field).label(f"v{i}")
			for i, (_, function, field) in enumerate(spec)
		]
		percentiles = [percentile_of(function) for _, function, _ in spec]
		where = self._where(table, shape)
		if any(percentiles):
			groups = [k.element for k in keys]
			ranks = []
			for i, percent in enumerate(percentiles):
				if percent:
					value = values[i].element
					# NULLs rank apart (their own partition) and are not counted.
					order = sa.func.row_number().over(partition_by=[*groups, value.is_(None)], order_by=value)
					ranks += [
						order.label(f"r{i}"),
						sa.func.count(value).over(partition_by=groups or None).label(f"n{i}"),
					]
			source = sa.select(*keys, *values, *ranks).where(*where).subquery()
			keys = [source.c[f"g{i}"] for i in range(len(keys))]
			values = [source.c[f"v{i}"] for i in range(len(spec))]
			where = []
		columns = []
		for i, ((_, function, field), percent) in enumerate(zip(spec, percentiles, strict=True)):
			value = values[i]
			if percent:
				rank, count = source.c[f"r{i}"], source.c[f"n{i}"]
				chosen = sa.and_(value.is_not(None), rank * 100 >= count * percent)
				columns.append(sa.func.min(sa.case((chosen, value))))
			elif function == "count" and field == "*":
				columns.append(sa.func.count())
			else:
				columns.append(getattr(sa.func, function)(value))
		query = sa.select(*keys, *columns).where(*where).group_by(*keys)
		return query if any(percentiles) else query.select_from(table)

	def _measured_value(self, table: sa.Table, function: str, field) -> sa.ColumnElement:
		"""The value a measure aggregates: a column, or microseconds between two Datetime columns
		(integers, so averages and ranks are exact on every database)."""
		if field == "*":
			if function != "count":
				raise ValidationError("measure", f"{function} needs a field")
			return sa.literal_column("1")
		if isinstance(field, str):
			return self._column(table, field)
		start, end = (self._column(table, f) for f in field)
		if self.dialect == "mysql":
			return sa.func.timestampdiff(sa.literal_column("MICROSECOND"), start, end)
		if self.dialect == "postgresql":
			return sa.cast(sa.extract("epoch", end - start) * 1000000, sa.BigInteger)
		# SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff": whole seconds from strftime, then the digits.
		# strftime reads the text without its fraction: given one, it rounds to the millisecond,
		# and .9995 s or more became the next second (a duration a second off).
		seconds = sa.cast(sa.func.strftime("%s", sa.func.substr(end, 1, 19)), sa.BigInteger) - sa.cast(
			sa.func.strftime("%s", sa.func.substr(start, 1, 19)), sa.BigInteger
		)
		micros = sa.cast(sa.func.substr(end, 21, 6), sa.BigInteger) - sa.cast(
			sa.func.substr(start, 21, 6), sa.BigInteger
		)
		return seconds * 1000000 + micros

	def insert(self, doctype: str, row: dict) -> None:
		values = self._complete(doctype, row)
		statement = self._insert(doctype, tuple(values))
		try:
			with self._connection(write=True) as conn, self._savepoint(conn):
				statement.rowcount(conn, values)
		except sa.exc.IntegrityError as exc:
			raise UniqueViolation(str(exc.orig)) from exc

	def insert_many(self, doctype: str, rows: Sequence[dict]) -> None:
		"""One executemany: SQLAlchemy sends it as multi-row INSERTs where the driver allows."""
		if not rows:
			return
		values = [self._complete(doctype, row) for row in rows]
		try:
			with self._connection(write=True) as conn, self._savepoint(conn):
				conn.execute(self.tables[doctype].insert(), values)
		except sa.exc.IntegrityError as exc:
			raise UniqueViolation(str(exc.orig)) from exc

	def _insert_if_changed(self, doctype: str, columns: tuple[str, ...]) -> "Prepared":
		"""INSERT ... SELECT ... FROM DUAL WHERE ROW_COUNT() = 1: in a batch, the row goes in only
		when the UPDATE before it matched its row (ROW_COUNT() counts matched rows: SQLAlchemy
		connects with CLIENT_FOUND_ROWS), so a lost compare-and-set neither waits on nor is
		refused by the log table."""

		def build() -> sa.Insert:
			table = self.tables[doctype]
			values = sa.select(*(sa.bindparam(c, type_=table.c[c].type) for c in columns))
			changed = sa.func.row_count() == sa.literal_column("1")
			return table.insert().from_select(columns, values.where(changed))

		return self._statement(("insert_if_changed", doctype, columns), build)

	def _insert(self, doctype: str, columns: tuple[str, ...]) -> "Prepared":
		return self._statement(("insert", doctype, columns), self.tables[doctype].insert, columns)

	def _complete(self, doctype: str, row: dict) -> dict:
		now = datetime.now(timezone.utc).replace(tzinfo=None)
		return schema.complete_row(doctype, row, now, self.tables[doctype].c.keys())

	def _savepoint(self, conn: sa.Connection):
		"""PostgreSQL aborts the whole transaction on a failed statement; a savepoint keeps it
		usable after a unique violation. SQLite and MariaDB only undo the statement."""
		return conn.begin_nested() if self.dialect == "postgresql" else nullcontext()

	def update(self, doctype: str, name: str, values: dict, expect: Sequence[Filter] = ()) -> bool:
		statement, params = self._update(doctype, name, values, expect)
		try:
			with self._connection(write=True) as conn:
				return statement.rowcount(conn, params) == 1
		except sa.exc.IntegrityError as exc:
			raise UniqueViolation(str(exc.orig)) from exc

	def _update(
		self, doctype: str, name: str, values: dict, expect: Sequence[Filter]
	) -> tuple["Prepared", dict]:
		"""update's statement and the values to run it with."""
		shape, params = _filter_shape(expect)
		fields = tuple(values)

		def build() -> sa.Update:
			table = self.tables[doctype]
			for field in fields:
				self._column(table, field)  # the SET clause comes from the parameters: check them
			return table.update().where(table.c.name == sa.bindparam("p__name"), *self._where(table, shape))

		statement = self._statement(("update", doctype, fields, shape), build, fields)
		return statement, {**values, **params, "p__name": name}

	def update_all(self, doctype: str, filters: Sequence[Filter], values: dict) -> int:
		shape, params = _filter_shape(filters)
		fields = tuple(values)

		def build() -> sa.Update:
			table = self.tables[doctype]
			for field in fields:
				self._column(table, field)
			return table.update().where(*self._where(table, shape))

		statement = self._statement(("update_all", doctype, fields, shape), build, fields)
		with self._connection(write=True) as conn:
			return statement.rowcount(conn, {**values, **params})

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
		"""On MariaDB/MySQL, outside a transaction: the UPDATE, the INSERT (which runs only when the
		UPDATE matched) and the read go as one multi-statement batch, then COMMIT, or ROLLBACK
		when the UPDATE matched nothing: two round trips. COMMIT is not in the batch on purpose:
		a caller interrupted while the batch waits (on a row lock, say) gives the connection up,
		and the server, holding no COMMIT, rolls the batch back, as it would separate statements.
		Elsewhere, or inside a transaction, the same as separate calls."""
		if not self._batches:
			return compare_and_set_in_steps(self, doctype, name, values, expect, record, then_read)
		# Built first, also when the batch cannot run here: the worker's warm-up rehearses a job
		# inside a transaction, and must leave these compiled for the jobs after it.
		record_doctype, row = record
		row = self._complete(record_doctype, row)
		parts = [
			self._update(doctype, name, values, expect),
			(self._insert_if_changed(record_doctype, tuple(row)), row),
		]
		if then_read is not None:
			parts.append(self._select(*then_read))
		# Nothing to keep when the UPDATE lost.
		results = self._batch_alone(parts, commit_if=lambda results: results[0][1] == 1)
		if results is None:
			return compare_and_set_in_steps(self, doctype, name, values, expect, record, then_read)
		if results[0][1] != 1:
			return None
		return parts[2][0].to_rows(results[2][0] or []) if then_read is not None else []

	def compare_and_set_many(self, doctype: str, changes: Sequence[Change]) -> list[bool]:
		"""On MariaDB/MySQL, outside a transaction: every UPDATE and its INSERT-if-changed in one
		multi-statement batch, then COMMIT (a lost one wrote nothing to undo): two round trips for
		a scheduler batch of a hundred jobs, where separate statements cost two hundred. Elsewhere,
		or inside a transaction, the same as separate calls in one transaction."""
		if not self._batches or not changes:
			return compare_and_set_many_in_steps(self, doctype, changes)
		parts, updates = [], []
		for change in changes:
			updates.append(len(parts))
			parts.append(self._update(doctype, change.name, change.values, change.expect))
			# Each INSERT runs only when the statement before it changed one row: the UPDATE, then
			# the record, then each `also` row, so a lost UPDATE inserts none of them.
			for record_doctype, row in (change.record, *change.also):
				row = self._complete(record_doctype, row)
				parts.append((self._insert_if_changed(record_doctype, tuple(row)), row))
		results = self._batch_alone(parts, commit_if=lambda results: True)  # a lost one wrote nothing
		if results is None:
			return compare_and_set_many_in_steps(self, doctype, changes)
		return [results[n][1] == 1 for n in updates]

	def _batch_alone(self, parts: list, commit_if) -> list | None:
		"""Run `parts` as one multi-statement batch in a transaction of its own, then COMMIT when
		`commit_if(results)`, else ROLLBACK. None when they cannot run so here (inside a
		transaction, or a statement SQLAlchemy must render per run): go statement by statement."""
		held = self._local.held
		if (
			self._local.conn is not None
			or (held is not None and held.in_transaction())
			or not all(statement.lean for statement, _ in parts)
		):
			return None
		try:
			with nullcontext(held) if held is not None else self.engine.connect() as conn:
				try:
					results = run_batch(conn, parts)
					end_transaction(conn, commit=commit_if(results))
				finally:
					if self._local.kept is not None:
						self._local.kept.read_open = False  # ended, or the connection given up
		except sa.exc.IntegrityError as exc:
			raise UniqueViolation(str(exc.orig)) from exc
		return results

	def update_apart(self, doctype: str, name: str, values: dict, expect: Sequence[Filter] = ()) -> bool:
		"""Handlers never write through this store's connections: outside transaction() every
		write already commits on its own."""
		return self.update(doctype, name, values, expect)

	def savepoint(self) -> AbstractContextManager[None]:
		"""Handlers keep their own connections: nothing of theirs is in this store's."""
		return nullcontext()

	def commit_work(self) -> None:
		"""Every write outside transaction() has committed already, and handlers keep their own
		connections: nothing is pending."""

	def delete(self, doctype: str, filters: Sequence[Filter]) -> int:
		shape, params = _filter_shape(filters)

		def build() -> sa.Delete:
			table = self.tables[doctype]
			return table.delete().where(*self._where(table, shape))

		with self._connection(write=True) as conn:
			return self._statement(("delete", doctype, shape), build).rowcount(conn, params)

	def delete_references(self, doctype: str, names: Sequence[str]) -> None:
		"""Nothing outside the engine's own tables refers to a job here."""

	def _statement(self, key: tuple, build, column_keys: Sequence[str] | None = None) -> "Prepared":
		"""Statements are built and compiled once per shape (doctype, fields, filter operators)
		with bound parameters: the hot path only binds values and reads rows."""
		statement = self._statements.get(key)
		if statement is None:
			statement = Prepared(build(), self.engine.dialect, column_keys)
			if len(self._statements) >= _MAX_STATEMENTS:
				self._statements.clear()  # shapes come from code and a few API filters: never reached
			self._statements[key] = statement
		return statement

	@staticmethod
	def _column(table: sa.Table, field: str) -> sa.Column:
		try:
			return table.c[field]
		except KeyError:
			raise ValidationError(field, f"is not a field of {table.name[3:]}") from None

	def _where(self, table: sa.Table, shape: tuple) -> list:
		clauses = []
		for index, (field, op, kind) in enumerate(shape):
			column = self._column(table, field)
			if kind == "null":
				clauses.append(column.is_(None))
			elif kind == "not null":
				clauses.append(column.is_not(None))
			elif op in ("in", "not in"):
				bound = sa.bindparam(f"p__{index}", expanding=True)
				clauses.append(column.in_(bound) if op == "in" else column.not_in(bound))
			else:
				clauses.append(column.operate(_COMPARISONS[op], sa.bindparam(f"p__{index}")))
		return clauses


def _filter_shape(filters: Sequence[Filter]) -> tuple[tuple, dict]:
	"""Filters as their shape, which keys the statement cache, and the values to bind into it.
	NULL rules are SQL's: `= None` is IS NULL, `!= None` is IS NOT NULL; `in []` matches nothing."""
	shape, params = [], {}
	for index, (field, op, value) in enumerate(filters):
		op = op.lower()
		if op == "is":
			kind = "not null" if value == "set" else "null"
		elif op in ("=", "!=") and value is None:
			kind = "null" if op == "=" else "not null"
		elif op in _COMPARISONS:
			kind = "value"
			params[f"p__{index}"] = value
		elif op in ("in", "not in"):
			kind = "value"
			params[f"p__{index}"] = list(value)
		else:
			raise ValidationError(field, f"unsupported filter operator {op!r}")
		shape.append((field, op, kind))
	return tuple(shape), params


_COMPARISONS = {
	"=": sa.sql.operators.eq,
	"!=": sa.sql.operators.ne,
	"<": sa.sql.operators.lt,
	"<=": sa.sql.operators.le,
	">": sa.sql.operators.gt,
	">=": sa.sql.operators.ge,
}
