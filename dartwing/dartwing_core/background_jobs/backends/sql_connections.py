"""Connection state: the connection a worker keeps across sessions, what a forked child inherits,
and the engine events each database needs (interrupted calls, MySQL multi-statements, SQLite's
WAL and write lock)."""

import logging
import threading
import time

import sqlalchemy as sa

logger = logging.getLogger("dartwing.jobs")


class KeptConnection:
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


INHERITED: list = []  # a forked child's copies of its parent's connections, see _after_fork_in_child


class ThreadState(threading.local):
	conn: sa.Connection | None = None  # the connection of this thread's open transaction
	held: sa.Connection | None = None  # the connection session() holds for this thread
	kept: KeptConnection | None = None  # the connection keep_connection() lends to sessions


def mark_read_only(conn: sa.Connection, read_only: bool) -> None:
	"""Tells the SQLite begin hook whether to take the write lock (BEGIN IMMEDIATE)."""
	if conn.get_execution_options().get("dartwing_read_only", False) != read_only:
		conn.execution_options(dartwing_read_only=read_only)


def interrupts(exc: BaseException, dialect) -> bool:
	"""An exception that stopped a database call from outside (a job's deadline, RQ's own job
	timeout, which is an Exception, Ctrl-C), not the server's answer nor a value the driver
	refused before sending anything."""
	return not isinstance(exc, (dialect.loaded_dbapi.Error, ValueError, TypeError))


def give_up_interrupted_connections(engine: sa.Engine) -> None:
	"""A call interrupted while the server was still to answer leaves its connection out of step
	(psycopg: "another command is already in progress"; mysqlclient: "commands out of sync"). For
	SQLAlchemy's own calls too (COMMIT, `execute`), treat it as a lost connection: this one is
	invalidated, the pool's others are not, and the interrupt reaches the caller unchanged."""

	@sa.event.listens_for(engine, "handle_error")
	def _on_error(context):
		if context.connection is not None and interrupts(context.original_exception, context.dialect):
			context.is_disconnect = True
			context.invalidate_pool_on_disconnect = False


_CLIENT_MULTI_STATEMENTS = 1 << 16  # MySQL protocol capability flag, the same in every driver


def allow_multi_statements(engine: sa.Engine) -> None:
	@sa.event.listens_for(engine, "do_connect")
	def _on_do_connect(_dialect, _record, _args, params):
		# Added to the flags the dialect chose (CLIENT_FOUND_ROWS among them), not instead.
		params["client_flag"] = params.get("client_flag", 0) | _CLIENT_MULTI_STATEMENTS


WAL_AUTOCHECKPOINT_PAGES = 10000  # ~40 MB of WAL


def make_sqlite_safe(engine: sa.Engine) -> None:
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
