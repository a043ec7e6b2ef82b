"""The execution fast path: statements compiled once and run on the DBAPI cursor, and
compare-and-set's multi-statement batch. The only code that touches SQLAlchemy below its public
API (see Prepared's docstring for why)."""

from collections.abc import Sequence

import sqlalchemy as sa

from .sql_connections import interrupts


class Prepared:
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
		return run_batch(conn, [(self, values)])[0][0] or []

	def rows(self, conn: sa.Connection, values: dict) -> list[dict]:
		return self.to_rows(self.tuples(conn, values))

	def to_rows(self, tuples: Sequence[tuple]) -> list[dict]:
		keys = self.keys
		return [dict(zip(keys, row, strict=True)) for row in tuples]

	def rowcount(self, conn: sa.Connection, values: dict) -> int:
		if not self.lean:
			return conn.execute(self.statement, values).rowcount
		return run_batch(conn, [(self, values)])[0][1]


def run_batch(
	conn: sa.Connection, statements: Sequence[tuple[Prepared, dict]]
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
		interrupted = interrupts(exc, conn.dialect)
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


def end_transaction(conn: sa.Connection, commit: bool) -> None:
	"""COMMIT or ROLLBACK the transaction a batch ran in, which the driver began and SQLAlchemy's
	Connection does not know of; errors are handled as run_batch handles them."""
	dbapi_conn = conn.connection.dbapi_connection
	try:
		dbapi_conn.commit() if commit else dbapi_conn.rollback()
	except BaseException as exc:
		conn._handle_dbapi_exception(exc, None, None, None, None)  # no statement: an interrupt stays as is
