"""Store port over SQLAlchemy Core: SQLite by default, MariaDB/MySQL or PostgreSQL by URL.

Tables (`tab<DocType>`, Frappe's column names and standard columns) and indexes are built from
the doctype JSON, so this store and a Frappe site hold the same rows.
"""

import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url

from .. import schema
from ..errors import UniqueViolation, ValidationError
from ..ports import Filter, compare_and_set_in_steps, order_terms

_LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_COLUMN_TYPES = {
	"Data": sa.String(140),
	"Link": sa.String(140),
	"Select": sa.String(140),
	"Int": sa.Integer(),
	"Check": sa.SmallInteger(),
	"Float": sa.Float(),
	"Percent": sa.Float(),
	"Datetime": _DATETIME,
	"Small Text": sa.Text(),
	"Text": sa.Text(),
	"Long Text": _LONG_TEXT,
	"Code": _LONG_TEXT,
	"JSON": _LONG_TEXT,
}


logger = logging.getLogger("dartwing.jobs")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_MAX_STATEMENTS = 1024


@functools.cache
def _mysqlclient_loads() -> bool:
	"""Importable, not merely installed: its C module needs MariaDB's client library at run time."""
	try:
		import MySQLdb  # noqa: F401
	except ImportError:
		return False
	return True


def normalize_url(url: str) -> str:
	"""Accept plain scheme names and pick the drivers this project installs: for MariaDB/MySQL
	mysqlclient (C) when it imports, else PyMySQL (pure Python, always installed). A URL that
	names its driver (mysql+pymysql://) keeps it."""
	parsed = make_url(url)
	mysql_driver = "mysql+mysqldb" if _mysqlclient_loads() else "mysql+pymysql"
	driver = {"mysql": mysql_driver, "mariadb": mysql_driver, "postgresql": "postgresql+psycopg"}
	if parsed.drivername in driver:
		parsed = parsed.set(drivername=driver[parsed.drivername])
	if parsed.drivername.startswith("mysql") and "charset" not in parsed.query:
		parsed = parsed.update_query_dict({"charset": "utf8mb4"})
	if (
		parsed.drivername == "mysql+pymysql"
		and (parsed.host or "localhost") in _LOOPBACK
		and not any(key.startswith("ssl") for key in parsed.query)
	):
		# PyMySQL tries TLS by default and builds a fresh SSL context (~25 ms) for every
		# connection; a worker's work-horse connects once per job. On loopback TLS protects
		# nothing, so it is off unless the URL asks for it (e.g. ?ssl_ca=...).
		parsed = parsed.update_query_dict({"ssl_disabled": "true"})
	return parsed.render_as_string(hide_password=False)


def build_metadata() -> tuple[sa.MetaData, dict[str, sa.Table]]:
	metadata = sa.MetaData()
	tables = {}
	for doctype in schema.DOCTYPES:
		columns = [
			sa.Column("name", sa.String(140), primary_key=True),
			sa.Column("creation", _DATETIME),
			sa.Column("modified", _DATETIME),
			sa.Column("modified_by", sa.String(140)),
			sa.Column("owner", sa.String(140)),
			sa.Column("docstatus", sa.SmallInteger(), nullable=False, server_default="0"),
			sa.Column("idx", sa.Integer(), nullable=False, server_default="0"),
		]
		for field in schema.data_fields(doctype):
			columns.append(
				sa.Column(
					field["fieldname"],
					_COLUMN_TYPES[field["fieldtype"]],
					unique=bool(field.get("unique")) or None,
					index=bool(field.get("search_index")) or None,
				)
			)
		table = sa.Table(
			schema.table_name(doctype), metadata, *columns, mysql_charset="utf8mb4", mysql_engine="InnoDB"
		)
		for fields in schema.composite_indexes(doctype):
			sa.Index(f"{'_'.join(fields)}_index", *(table.c[f] for f in fields), _table=table)
		tables[doctype] = table
	return metadata, tables


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
		_give_up_interrupted_connections(self.engine)
		if self.dialect == "sqlite":
			_make_sqlite_safe(self.engine)
		# MySQL's drivers send several statements at once only if the connection says so: what
		# compare_and_set's batch needs. Every statement this store sends is compiled
		# by SQLAlchemy with bound parameters; none is built from input.
		self._batches = self.dialect == "mysql"
		if self._batches:
			_allow_multi_statements(self.engine)
		self.metadata, self.tables = build_metadata()
		self._statements: dict[tuple, _Prepared] = {}
		self._local = _ThreadState()
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
			_INHERITED.append(state.kept)
			state.kept = None
		for held in (state.held, state.conn):
			if held is not None:
				_INHERITED.append(held)
		state.held = state.conn = None
		_INHERITED.append(self.engine.pool)  # dispose() below only drops the engine's reference
		self.engine.dispose(close=False)

	def create_schema(self) -> None:
		"""Create missing tables and indexes, and add columns new doctype fields need."""
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
			for table in self.tables.values():
				present = {c["name"] for c in inspector.get_columns(table.name)}
				for column in table.columns:
					if column.name not in present:
						kind = column.type.compile(dialect=self.engine.dialect)
						conn.exec_driver_sql(
							f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
						)

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
		kept = self._local.kept = _KeptConnection()
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
			_mark_read_only(held, True)
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
				_mark_read_only(conn, True)
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
			_mark_read_only(held, False)
			try:
				with held.begin():
					yield held
			finally:
				if self._local.kept is not None:
					self._local.kept.read_open = False  # the commit or rollback ended it

	def get(self, doctype: str, name: str, *, for_update: bool = False) -> dict | None:
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
	) -> list[dict]:
		statement, params = self._select(doctype, filters, fields, order_by, limit, offset)
		with self._connection(write=False) as conn:
			return statement.rows(conn, params)

	def _select(
		self,
		doctype: str,
		filters: Sequence[Filter] = (),
		fields: Sequence[str] = ("*",),
		order_by: str | None = None,
		limit: int | None = None,
		offset: int = 0,
	) -> tuple["_Prepared", dict]:
		"""get_all's statement and the values to run it with."""
		shape, params = _filter_shape(filters)
		fields = tuple(fields)
		key = ("get_all", doctype, fields, shape, order_by, limit is not None, bool(offset))

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
			return query

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

	def insert(self, doctype: str, row: dict) -> None:
		values = self._complete(doctype, row)
		statement = self._insert(doctype, tuple(values))
		try:
			with self._connection(write=True) as conn, self._savepoint(conn):
				statement.rowcount(conn, values)
		except sa.exc.IntegrityError as exc:
			raise UniqueViolation(str(exc.orig)) from exc

	def _insert_if_changed(self, doctype: str, columns: tuple[str, ...]) -> "_Prepared":
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

	def _insert(self, doctype: str, columns: tuple[str, ...]) -> "_Prepared":
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
	) -> tuple["_Prepared", dict]:
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
		held = self._local.held
		if (
			self._local.conn is not None
			or (held is not None and held.in_transaction())
			or not all(statement.lean for statement, _ in parts)
		):
			return compare_and_set_in_steps(self, doctype, name, values, expect, record, then_read)
		try:
			with nullcontext(held) if held is not None else self.engine.connect() as conn:
				try:
					results = _run_batch(conn, parts)
					changed = results[0][1] == 1
					_end_transaction(conn, commit=changed)  # nothing to keep when it lost
				finally:
					if self._local.kept is not None:
						self._local.kept.read_open = False  # ended, or the connection given up
		except sa.exc.IntegrityError as exc:
			raise UniqueViolation(str(exc.orig)) from exc
		if not changed:
			return None
		return parts[2][0].to_rows(results[2][0] or []) if then_read is not None else []

	def update_apart(self, doctype: str, name: str, values: dict, expect: Sequence[Filter] = ()) -> bool:
		"""Handlers never write through this store's connections: outside transaction() every
		write already commits on its own."""
		return self.update(doctype, name, values, expect)

	def delete(self, doctype: str, filters: Sequence[Filter]) -> int:
		shape, params = _filter_shape(filters)

		def build() -> sa.Delete:
			table = self.tables[doctype]
			return table.delete().where(*self._where(table, shape))

		with self._connection(write=True) as conn:
			return self._statement(("delete", doctype, shape), build).rowcount(conn, params)

	def delete_references(self, doctype: str, names: Sequence[str]) -> None:
		"""Nothing outside the engine's own tables refers to a job here."""

	def _statement(self, key: tuple, build, column_keys: Sequence[str] | None = None) -> "_Prepared":
		"""Statements are built and compiled once per shape (doctype, fields, filter operators)
		with bound parameters: the hot path only binds values and reads rows."""
		statement = self._statements.get(key)
		if statement is None:
			statement = _Prepared(build(), self.engine.dialect, column_keys)
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


class _Prepared:
	"""A statement compiled once for this database, run on the connection's DBAPI cursor.

	Why not `Connection.execute`: a worker forks a work-horse per job, after which every memory
	page the worker writes costs a page fault. SQLAlchemy's per-execution machinery (execution
	context, result objects, events) touches several hundred pages per job; binding values and
	reading tuples here touches a few. Compilation, transactions, pooling and error translation
	stay SQLAlchemy's. Statements SQLAlchemy must render per execution (expanding IN) use it.
	"""

	def __init__(self, statement: sa.Executable, dialect, column_keys: Sequence[str] | None):
		self.statement = statement
		compiled = statement.compile(dialect=dialect, column_keys=column_keys)
		self.sql = compiled.string
		self.lean = "POSTCOMPILE" not in self.sql and not compiled.escaped_bind_names
		self.names = tuple(compiled.positiontup) if compiled.positional else None
		self.binders = {}
		for name, bind in compiled.binds.items():
			processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
			if processor is not None:
				self.binders[name] = processor
		# Binding as plain tuples: the parameters in the order the SQL takes them, and where a
		# processor applies. construct_params, the general way, touches every bind parameter
		# object of the statement on each run: pages a forked worker then faults on.
		self._order = self.names if self.names is not None else tuple(compiled.binds)
		self._processors = tuple(
			(index, self.binders[name]) for index, name in enumerate(self._order) if name in self.binders
		)
		self._compiled = compiled
		self._dialect = dialect
		columns = list(getattr(statement, "selected_columns", ()))
		self.keys = tuple(column.key for column in columns)
		self._types = tuple(column.type for column in columns)
		self._readers: list | None = None

	def _params(self, values: dict):
		try:
			params = [values[name] for name in self._order]
		except KeyError:  # a parameter left to its default, or missing: SQLAlchemy's way says which
			return self._constructed_params(values)
		for index, process in self._processors:
			params[index] = process(params[index])
		return tuple(params) if self.names is not None else dict(zip(self._order, params, strict=True))

	def _constructed_params(self, values: dict):
		params = self._compiled.construct_params(values)
		for name, bind in self.binders.items():
			if name in params:
				params[name] = bind(params[name])
		if self.names is None:
			return params
		return tuple(params[name] for name in self.names)

	def read(self, rows: Sequence[tuple], description) -> list[tuple]:
		"""Rows as the driver returned them, through SQLAlchemy's result processors."""
		if not rows:
			return list(rows)
		if self._readers is None:
			self._readers = [
				kind.dialect_impl(self._dialect).result_processor(self._dialect, column[1])
				for kind, column in zip(self._types, description, strict=False)
			]
		readers = self._readers
		if not any(readers):
			return list(rows)
		return [
			tuple(value if read is None else read(value) for read, value in zip(readers, row, strict=False))
			for row in rows
		]

	def tuples(self, conn: sa.Connection, values: dict) -> list[tuple]:
		if not self.lean:
			return [tuple(row) for row in conn.execute(self.statement, values)]
		return _run_batch(conn, [(self, values)])[0][0] or []

	def rows(self, conn: sa.Connection, values: dict) -> list[dict]:
		return self.to_rows(self.tuples(conn, values))

	def to_rows(self, tuples: Sequence[tuple]) -> list[dict]:
		keys = self.keys
		return [dict(zip(keys, row, strict=True)) for row in tuples]

	def rowcount(self, conn: sa.Connection, values: dict) -> int:
		if not self.lean:
			return conn.execute(self.statement, values).rowcount
		return _run_batch(conn, [(self, values)])[0][1]


def _run_batch(
	conn: sa.Connection, statements: Sequence[tuple[_Prepared, dict]]
) -> list[tuple[list[tuple] | None, int]]:
	"""Run lean statements on the connection's DBAPI cursor in one round trip; for each, its rows
	(None when it returns none) and its rowcount. More than one statement needs a driver taking
	multi-statement batches: MySQL's, with CLIENT_MULTI_STATEMENTS, and its positional
	paramstyle. DBAPI errors leave as SQLAlchemy's exceptions, with its disconnect handling,
	exactly as from `execute`."""
	if len(statements) == 1:
		statement, values = statements[0]
		sql, params = statement.sql, statement._params(values)
	else:
		sql = "; ".join(statement.sql for statement, _ in statements)
		params = tuple(param for statement, values in statements for param in statement._params(values))
	dbapi_conn = conn.connection.dbapi_connection
	cursor = dbapi_conn.cursor()
	try:
		cursor.execute(sql, params)
		results = []
		for index, (statement, _) in enumerate(statements):
			if index:
				cursor.nextset()
			rows = cursor.fetchall() if cursor.description is not None else None
			read = None if rows is None else statement.read(rows, cursor.description)
			results.append((read, cursor.rowcount))
		return results
	except BaseException as exc:
		interrupted = _interrupts(exc, conn.dialect)
		if not interrupted and not conn.in_transaction():
			# A statement outside SQLAlchemy's transaction began one in the driver (MariaDB,
			# PostgreSQL), and a failed batch leaves its earlier statements' writes in it: end
			# it, so the connection is usable (PostgreSQL aborts it) and holds no locks.
			try:
				dbapi_conn.rollback()
			except Exception:
				pass
		# An interrupt: the handle_error hook gives the connection up (the server then rolls back
		# what the statements did) and, given no statement, SQLAlchemy re-raises it as it is.
		conn._handle_dbapi_exception(exc, None if interrupted else sql, params, cursor, None)
	finally:
		try:
			cursor.close()  # after a lost connection mysqlclient raises here: keep the first error
		except conn.dialect.loaded_dbapi.Error:
			pass


def _end_transaction(conn: sa.Connection, commit: bool) -> None:
	"""COMMIT or ROLLBACK the transaction a batch ran in, which the driver began and SQLAlchemy's
	Connection does not know of; errors are handled as _run_batch handles them."""
	dbapi_conn = conn.connection.dbapi_connection
	try:
		dbapi_conn.commit() if commit else dbapi_conn.rollback()
	except BaseException as exc:
		conn._handle_dbapi_exception(exc, None, None, None, None)  # no statement: an interrupt stays as is


class _KeptConnection:
	"""The connection keep_connection() lends to each session of one thread."""

	IDLE_SECONDS = 60  # after this long unused, take a fresh one: the pool's recycling applies

	def __init__(self):
		self.conn: sa.Connection | None = None
		self.used_at = 0.0
		self.read_open = False  # a read began a driver transaction SQLAlchemy does not know of

	def take(self, engine: sa.Engine) -> sa.Connection:
		if self.conn is not None and (
			self.conn.closed or self.conn.invalidated or time.monotonic() - self.used_at > self.IDLE_SECONDS
		):
			self.drop()
		if self.conn is None:
			self.conn = engine.connect()
		return self.conn

	def end_session(self) -> None:
		"""A session ends with no transaction open: a read's would hold its tables' metadata
		locks while the worker waits for work. Writes have committed; end a trailing read's."""
		conn = self.conn
		if conn is None:
			return
		try:
			if conn.in_transaction():
				conn.rollback()
			elif self.read_open:
				conn.connection.dbapi_connection.rollback()
		except Exception:
			# The session's work is done; a connection that cannot even roll back is given up.
			logger.warning("Ending a session's read failed; taking a fresh connection", exc_info=True)
			conn.invalidate()
			self.drop()
			return
		self.read_open = False
		self.used_at = time.monotonic()

	def drop(self) -> None:
		conn, self.conn, self.read_open = self.conn, None, False
		if conn is not None:
			conn.close()


_INHERITED: list = []  # a forked child's copies of its parent's connections, see _after_fork_in_child


class _ThreadState(threading.local):
	conn: sa.Connection | None = None  # the connection of this thread's open transaction
	held: sa.Connection | None = None  # the connection session() holds for this thread
	kept: _KeptConnection | None = None  # the connection keep_connection() lends to sessions


def _mark_read_only(conn: sa.Connection, read_only: bool) -> None:
	"""Tells the SQLite begin hook whether to take the write lock (BEGIN IMMEDIATE)."""
	if conn.get_execution_options().get("dartwing_read_only", False) != read_only:
		conn.execution_options(dartwing_read_only=read_only)


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


def _interrupts(exc: BaseException, dialect) -> bool:
	"""An exception that stopped a database call from outside (a job's deadline, RQ's own job
	timeout, which is an Exception, Ctrl-C), not the server's answer nor a value the driver
	refused before sending anything."""
	return not isinstance(exc, (dialect.loaded_dbapi.Error, ValueError, TypeError))


def _give_up_interrupted_connections(engine: sa.Engine) -> None:
	"""A call interrupted while the server was still to answer leaves its connection out of step
	(psycopg: "another command is already in progress"; mysqlclient: "commands out of sync"). For
	SQLAlchemy's own calls too (COMMIT, `execute`), treat it as a lost connection: this one is
	invalidated, the pool's others are not, and the interrupt reaches the caller unchanged."""

	@sa.event.listens_for(engine, "handle_error")
	def _on_error(context):
		if context.connection is not None and _interrupts(context.original_exception, context.dialect):
			context.is_disconnect = True
			context.invalidate_pool_on_disconnect = False


_CLIENT_MULTI_STATEMENTS = 1 << 16  # MySQL protocol capability flag, the same in every driver


def _allow_multi_statements(engine: sa.Engine) -> None:
	@sa.event.listens_for(engine, "do_connect")
	def _on_do_connect(_dialect, _record, _args, params):
		# Added to the flags the dialect chose (CLIENT_FOUND_ROWS among them), not instead.
		params["client_flag"] = params.get("client_flag", 0) | _CLIENT_MULTI_STATEMENTS


WAL_AUTOCHECKPOINT_PAGES = 10000  # ~40 MB of WAL


def _make_sqlite_safe(engine: sa.Engine) -> None:
	"""WAL (set once by create_schema) lets readers run beside the one writer; BEGIN IMMEDIATE
	takes the write lock up front so two writers queue on the busy timeout instead of failing
	with 'database is locked'."""

	@sa.event.listens_for(engine, "connect")
	def _on_connect(dbapi_conn, _record):
		dbapi_conn.isolation_level = None
		cursor = dbapi_conn.cursor()
		cursor.execute("PRAGMA synchronous=NORMAL")
		# A commit that crosses the auto-checkpoint threshold copies the WAL into the database
		# and syncs it, a ~10 ms stall for whoever happens to commit (a submit, most often).
		# Keep the threshold high as a safety net; the scheduler checkpoints every tick instead.
		cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
		cursor.close()

	@sa.event.listens_for(engine, "begin")
	def _on_begin(conn):
		# A lone read needs no BEGIN: SQLite runs each statement outside one as its own transaction.
		if not conn.get_execution_options().get("dartwing_read_only"):
			conn.exec_driver_sql("BEGIN IMMEDIATE")
