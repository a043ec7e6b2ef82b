"""The standalone store's connection handling that the Store contract cannot see from outside:
the connection a worker keeps across sessions, and what a forked work-horse does with it."""

import gc
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from dartwing.dartwing_core.background_jobs.errors import JobTimedOut
from dartwing.dartwing_core.background_jobs.executor import attempt, claim, deadline, settle
from dartwing.dartwing_core.background_jobs.store_contract import cleanup, job_row, log
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG
from dartwing.dartwing_core.background_jobs.worker import _warm_up


@pytest.fixture
def store(any_engine):
	store = any_engine.store
	store.insert(JOB, job_row("ct-k1", progress=0))
	yield store
	cleanup(store)


def _server_id(store) -> int | str:
	"""The server's id for the connection this thread's session holds (read from the driver,
	without a statement that would change its state); SQLite's is the driver object's id."""
	dbapi = store._local.held.connection.dbapi_connection
	if store.dialect == "sqlite":
		return id(dbapi)
	return dbapi.info.backend_pid if store.dialect == "postgresql" else dbapi.thread_id()


def _open_transactions(store, server_id: int) -> int:
	"""Transactions the server sees open on connection `server_id`, asked on another connection."""
	query = {
		"mysql": "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = :id",
		"postgresql": "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = :id AND state LIKE 'idle in%'",
	}[store.dialect]
	outside = sa.create_engine(store.url, poolclass=sa.pool.NullPool)  # not the store's pool
	try:
		with outside.connect() as other:
			return other.execute(sa.text(query), {"id": server_id}).scalar_one()
	finally:
		outside.dispose()


def test_sessions_share_the_kept_connection_and_leave_no_transaction_open(store):
	# SQLite runs a session's reads outside any transaction: there only the sharing is checked.
	server = store.dialect != "sqlite"
	checkouts = []
	sa.event.listen(store.engine.pool, "checkout", lambda *_: checkouts.append(1))
	with store.keep_connection():
		with store.session():
			first = _server_id(store)
			assert store.get(JOB, "ct-k1")["progress"] == 0  # a read last: its transaction must end
		if server:
			assert _open_transactions(store, first) == 0, "a read-only session left its transaction open"

		with store.session():
			assert _server_id(store) == first, "the next session took another connection"
			store.get(JOB, "ct-k1")
			assert store.update(JOB, "ct-k1", {"progress": 5})
		if server:
			assert _open_transactions(store, first) == 0
	assert len(checkouts) == 1, "each session took a connection from the pool: none was kept"
	assert store.get(JOB, "ct-k1")["progress"] == 5


def test_a_failed_session_gives_the_kept_connection_up_and_the_next_one_works(store):
	with store.keep_connection():
		with store.session():
			kept = store._local.held
		with pytest.raises(RuntimeError), store.session():
			with store.transaction():
				store.update(JOB, "ct-k1", {"progress": 99})
				raise RuntimeError("the session fails part-way")
		assert kept.closed, "a session that failed must not hand its connection to the next"
		with store.session():
			assert store._local.held is not kept
			assert store.get(JOB, "ct-k1")["progress"] == 0
			assert store.update(JOB, "ct-k1", {"progress": 60})
	assert store.get(JOB, "ct-k1")["progress"] == 60


def _fork(child) -> int:
	"""Exit code of a forked child running `child` (0 when it returns)."""
	pid = os.fork()
	if pid == 0:
		code = 1
		try:
			code = child() or 0
		finally:
			os._exit(code)
	return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_forked_child_never_closes_its_parents_pooled_connections(store):
	pooled = [store.engine.raw_connection() for _ in range(2)]
	for conn in pooled:
		conn.close()  # back to the pool, idle while the child forks
	del pooled, conn  # a closed handle still refers to its pool: the child must hold nothing of it

	def child():
		with store.session():
			assert store.update(JOB, "ct-k1", {"progress": 7})
		gc.collect()  # mysqlclient closes a collected connection with COM_QUIT

	assert _fork(child) == 0
	pooled = [store.engine.raw_connection() for _ in range(2)]
	try:
		for conn in pooled:
			cursor = conn.cursor()
			cursor.execute("SELECT 1")
			assert cursor.fetchall()[0][0] == 1
	finally:
		for conn in pooled:
			conn.close()
	assert store.get(JOB, "ct-k1")["progress"] == 7


def test_a_forked_child_never_uses_its_parents_kept_connection(store):
	with store.keep_connection():
		with store.session():
			store.get(JOB, "ct-k1")  # the kept connection is open when the work-horse forks
			parents = _server_id(store)
		pid = os.fork()
		if pid == 0:  # the work-horse: its own connection, and the parent's left alone
			code = 1
			try:
				with store.session():
					if _server_id(store) == parents:
						code = 3
						raise AssertionError("the child took its parent's connection")
					assert store.update(JOB, "ct-k1", {"progress": 7})
				gc.collect()
				code = 0
			finally:
				os._exit(code)
		_, status = os.waitpid(pid, 0)
		code = os.waitstatus_to_exitcode(status)
		assert code != 3, "the child took its parent's kept connection"
		assert code == 0, "the child could not write on its own connection"
		with store.session():  # the parent's connection must still be in step with its server
			assert store.get(JOB, "ct-k1")["progress"] == 7
			assert store.update(JOB, "ct-k1", {"progress": 8})
	assert store.get(JOB, "ct-k1")["progress"] == 8


def test_a_deadline_during_a_statement_reaches_the_caller_and_the_store_recovers(store):
	"""A job's deadline (SIGALRM raising JobTimedOut, a BaseException) may land while the store
	waits on the server: it must reach the executor as it is, not as a database error that
	`except Exception` (saving progress, a handler) would swallow."""
	if store.dialect == "sqlite":
		pytest.skip("SQLite waits for a lock inside its C busy handler: the alarm lands after it")
	table = store.engine.dialect.identifier_preparer.quote("tabBackground Job")
	locker = store.engine.connect()
	locker.exec_driver_sql(f"SELECT name FROM {table} WHERE name = 'ct-k1' FOR UPDATE")
	release = threading.Timer(1.0, locker.commit)  # the row is held for a second
	release.start()
	started = time.monotonic()
	try:
		with pytest.raises(JobTimedOut), deadline(0.3):
			store.update_apart(JOB, "ct-k1", {"progress": 40})  # what saving progress does
			time.sleep(3)  # the handler would go on working: the deadline must have stopped it
	finally:
		release.join()
		locker.close()
	assert time.monotonic() - started < 2.5
	assert store.update(JOB, "ct-k1", {"progress": 41})
	assert store.get(JOB, "ct-k1")["progress"] == 41


def test_a_kept_connection_lost_after_a_sessions_last_read_fails_neither_that_session_nor_the_next(store):
	if store.dialect == "sqlite":
		pytest.skip("SQLite has no server to lose the connection to")
	kill = {"mysql": "KILL :id", "postgresql": "SELECT pg_terminate_backend(:id)"}[store.dialect]
	with store.keep_connection():
		with store.session():
			assert store.get(JOB, "ct-k1")["progress"] == 0  # its work is done...
			with store.engine.connect() as other:  # ...when the server drops its connection
				other.execute(sa.text(kill), {"id": _server_id(store)})
				other.commit()
		with store.session():
			assert store.update(JOB, "ct-k1", {"progress": 9})
	assert store.get(JOB, "ct-k1")["progress"] == 9


class _BackstopTimeout(Exception):
	"""An interrupt that is an Exception, as RQ's own job timeout (JobTimeoutException) is."""


@contextmanager
def _interrupt_after(seconds: float, interrupt: type[BaseException]) -> Iterator[None]:
	"""Raise `interrupt` in this (the main) thread after `seconds`, as a job's deadline does."""

	def on_alarm(_signum, _frame):
		raise interrupt("interrupted")

	previous = signal.signal(signal.SIGALRM, on_alarm)
	signal.setitimer(signal.ITIMER_REAL, seconds)
	try:
		yield
	finally:
		signal.setitimer(signal.ITIMER_REAL, 0)
		signal.signal(signal.SIGALRM, previous)


def _start_k1(store, log_name: str) -> list[dict] | None:
	"""ct-k1 Queued -> Running, as a claim's compare-and-set."""
	return store.compare_and_set(
		JOB,
		"ct-k1",
		{"status": "Running", "transition_count": 1},
		[("transition_count", "=", 0)],
		record=(LOG, log(log_name, 1, job="ct-k1")),
	)


@pytest.mark.parametrize("interrupt", [JobTimedOut, _BackstopTimeout], ids=["deadline", "backstop"])
def test_a_compare_and_set_interrupted_while_it_waits_writes_nothing(store, interrupt):
	"""A transition interrupted while its UPDATE waits on a row lock reaches the caller as that
	interrupt, and nothing of it may commit later, when the lock frees: the caller was told it
	failed and will not publish it, release dependents or settle the run. (An interrupt during
	the COMMIT itself leaves the outcome unknown, as for any commit whose answer is lost.)"""
	if store.dialect == "sqlite":
		pytest.skip("SQLite waits for a lock inside its C busy handler: the alarm lands after it")
	table = store.engine.dialect.identifier_preparer.quote("tabBackground Job")
	locker = store.engine.connect()
	locker.exec_driver_sql(f"SELECT name FROM {table} WHERE name = 'ct-k1' FOR UPDATE")
	release = threading.Timer(0.8, locker.commit)
	release.start()
	try:
		with pytest.raises(interrupt), store.keep_connection(), store.session():
			with _interrupt_after(0.3, interrupt):
				_start_k1(store, "ct-l1")
	finally:
		release.join()
		locker.close()
	time.sleep(0.5)  # a batch the server still held would have finished by now

	assert (store.get(JOB, "ct-k1")["status"], store.get(LOG, "ct-l1")) == ("Queued", None)
	assert _start_k1(store, "ct-l2") == [], "the store stays usable"


def test_an_interrupted_commit_gives_its_connection_up_and_the_next_call_works(store):
	"""An Exception-typed interrupt (RQ's job timeout) landing while SQLAlchemy's own COMMIT waits
	left a PostgreSQL connection busy ("another command is already in progress"), and every retry
	on it failed. A deferred trigger makes this COMMIT wait; only PostgreSQL has those."""
	if store.dialect != "postgresql":
		pytest.skip("only PostgreSQL has deferred triggers, to make a COMMIT wait")
	table = store.engine.dialect.identifier_preparer.quote("tabBackground Job")
	with store.engine.begin() as conn:
		conn.exec_driver_sql(
			"CREATE FUNCTION ct_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
			" BEGIN IF NEW.progress = 77 THEN PERFORM pg_sleep(1); END IF; RETURN NULL; END $$"
		)
		conn.exec_driver_sql(
			f"CREATE CONSTRAINT TRIGGER ct_slow AFTER UPDATE ON {table}"
			" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ct_slow_commit()"
		)

	try:
		with store.keep_connection(), store.session():
			with pytest.raises(_BackstopTimeout), _interrupt_after(0.3, _BackstopTimeout):
				with store.transaction():
					store.update(JOB, "ct-k1", {"progress": 77})
			time.sleep(1)  # the interrupted COMMIT has finished on the server by now
			assert store.update(JOB, "ct-k1", {"progress": 78}), "the same session works on"
	finally:
		with store.engine.begin() as conn:
			conn.exec_driver_sql(f"DROP TRIGGER ct_slow ON {table}")
			conn.exec_driver_sql("DROP FUNCTION ct_slow_commit()")
	assert store.get(JOB, "ct-k1")["progress"] == 78


def test_the_worker_warm_up_leaves_nothing_for_the_first_job_to_compile(any_engine):
	"""The warm-up rehearses a job inside a rolled-back transaction, where a MariaDB
	compare-and-set cannot send its batch; it must still compile the batch's statements, or the
	first job compiles them, after the heap was frozen for the horses."""
	engine = any_engine
	_warm_up(engine)
	gc.unfreeze()  # _warm_up froze this test process's heap
	compiled = set(engine.store._statements)
	job_id = engine.submit("noop", "Acme", {"n": 1}, triggered_by="test")["job_id"]
	queue_job_id = engine.store.get(JOB, job_id)["queue_job_id"]
	before_job = set(engine.store._statements) - compiled  # the submit's and that read's

	with engine.store.keep_connection():  # what the supervising worker does, without the fork
		with engine.store.session():
			claimed = claim(engine, job_id, queue_job_id)
		outcome = attempt(engine, claimed)
		with engine.store.session():
			assert settle(engine, claimed, outcome) == "Completed"

	assert set(engine.store._statements) - compiled - before_job == set()
