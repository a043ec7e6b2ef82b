"""Shared fixtures. Everything is real: a Redis server, RQ worker processes, and databases
(SQLite always; MariaDB and PostgreSQL when one answers, otherwise those cases skip and say why)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path

import pytest

# Before anything imports it: pytest then shows the values behind a failed plain assert in the
# Store contract's checks (test_store_contract.py, test_sql_store_connections.py).
pytest.register_assert_rewrite("dartwing.dartwing_core.background_jobs.store_contract")

import sqlalchemy as sa
from redis import Redis

from dartwing.dartwing_core.background_jobs import admin, registry
from dartwing.dartwing_core.background_jobs.backends.sql_url import normalize_url
from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.registry import import_handler_modules
from dartwing.dartwing_core.background_jobs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = "tests.fixtures"
SAMPLES = "dartwing.dartwing_core.background_jobs.samples"
import_handler_modules([SAMPLES, FIXTURES])

REDIS_URL = os.environ.get("DARTWING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVER_URLS = {
	# No driver named: the store's choice (mysqlclient when installed, as `make test` does).
	"mariadb": normalize_url(os.environ.get("DARTWING_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/")),
	"postgresql": os.environ.get(
		"DARTWING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
	),
}
RUN_ID = uuid.uuid4().hex[:8]
TEST_SETTINGS = Settings(
	lease_seconds=3,
	cancel_grace_seconds=1,
	requeue_grace_seconds=1,
	checkpoint_interval=0.05,
	progress_persist_interval=0.2,
	scheduler_interval=0.2,
)


def pytest_report_header(config) -> str:
	driver = sa.engine.make_url(SERVER_URLS["mariadb"]).drivername
	return f"dartwing: MariaDB through {driver} (and mysql+pymysql in the any_engine tests)"


@pytest.fixture(scope="session")
def redis_url():
	client = Redis.from_url(REDIS_URL)
	try:
		client.ping()
	except Exception as exc:
		pytest.fail(f"Redis must answer at {REDIS_URL} (make test starts one): {exc}")
	return REDIS_URL


_server_databases: dict[str, str] = {}


def _server_database(kind: str) -> str:
	"""A database of this test run on a MariaDB/PostgreSQL server, created once, dropped at exit."""
	if kind in _server_databases:
		return _server_databases[kind]
	base = sa.engine.make_url(SERVER_URLS[kind])
	name = f"dartwing_test_{RUN_ID}"
	try:
		admin_engine = sa.create_engine(
			base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
		)
		with admin_engine.connect() as conn:
			conn.exec_driver_sql(f"CREATE DATABASE {name}")
		admin_engine.dispose()
	except Exception as exc:
		pytest.skip(f"{kind} not reachable at {base.render_as_string()}: {type(exc).__name__}: {exc}")
	url = base.set(database=name).render_as_string(hide_password=False)
	_server_databases[kind] = url
	return url


def pytest_sessionfinish(session, exitstatus):
	for kind, url in _server_databases.items():
		base = sa.engine.make_url(SERVER_URLS[kind])
		engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
		with engine.connect() as conn:
			if kind == "postgresql":
				conn.exec_driver_sql(
					f"DROP DATABASE IF EXISTS {sa.engine.make_url(url).database} WITH (FORCE)"
				)
			else:
				conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {sa.engine.make_url(url).database}")
		engine.dispose()


def make_db_url(kind: str, tmp_path) -> str:
	if kind == "sqlite":
		return f"sqlite:///{tmp_path / 'jobs.db'}"
	if kind == "mariadb-pymysql":  # the pure-Python driver the store falls back to
		url = sa.engine.make_url(_server_database("mariadb")).set(drivername="mysql+pymysql")
		return normalize_url(url.render_as_string(hide_password=False))
	return _server_database(kind)


def make_engine(db_url: str, redis_url: str, **settings):
	prefix = f"dwtest-{RUN_ID}-{uuid.uuid4().hex[:6]}"
	engine = build_engine(db_url, redis_url, replace(TEST_SETTINGS, queue_prefix=prefix, **settings))
	engine.store.drop_schema()
	engine.store.create_schema()
	admin.sync_job_types(engine)
	admin.add_organization(engine, "Acme")
	admin.add_organization(engine, "Globex")
	return engine


def dispose(engine) -> None:
	for queue in engine.queue.queues.values():
		queue.delete(delete_jobs=True)
	for key in engine.lock_client.scan_iter(f"{engine.settings.queue_prefix}:*"):
		engine.lock_client.delete(key)
	engine.store.drop_schema()
	engine.store.engine.dispose()


@pytest.fixture
def engine(tmp_path, redis_url):
	"""An engine on SQLite with its own queue namespace and the Acme and Globex organizations."""
	engine = make_engine(make_db_url("sqlite", tmp_path), redis_url)
	yield engine
	dispose(engine)


@pytest.fixture(params=["sqlite", "mariadb", "mariadb-pymysql", "postgresql"])
def any_engine(request, tmp_path, redis_url):
	"""The same engine on every database this machine has."""
	engine = make_engine(make_db_url(request.param, tmp_path), redis_url)
	yield engine
	dispose(engine)


def process_env(engine) -> dict:
	"""Environment that makes a child process build the same engine."""
	env = dict(os.environ)
	env.update({f"DARTWING_{k.upper()}": str(v) for k, v in asdict(engine.settings).items()})
	env.update(
		DARTWING_DB_URL=engine.store.url,
		DARTWING_REDIS_URL=REDIS_URL,
		DARTWING_IMPORTS=FIXTURES,
		DARTWING_LOG_LEVEL="INFO",
		# tests/ is not installed: child processes find the test handlers from the checkout.
		PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
	)
	return env


CLI = [sys.executable, "-m", "dartwing.dartwing_core.background_jobs"]


@pytest.fixture(params=["children", "fork-per-job"])
def worker_model(request, monkeypatch) -> str:
	"""Worker processes this test starts run jobs in long-lived children (the default) or fork a
	work-horse per job (`--fork-per-job`, through its environment variable): every guarantee the
	test checks must hold for both."""
	if request.param == "fork-per-job":
		monkeypatch.setenv("DARTWING_FORK_PER_JOB", "1")
	else:
		monkeypatch.delenv("DARTWING_FORK_PER_JOB", raising=False)
	return request.param


def run_worker_burst(
	engine, *args: str, timeout: float = 60, env: dict | None = None
) -> subprocess.CompletedProcess:
	"""A real RQ worker process draining the engine's queues until they are empty. `args` are more
	`worker` options; `env` overrides some of the engine's environment."""
	result = subprocess.run(
		[*CLI, "worker", "--burst", *args],
		env=process_env(engine) | (env or {}),
		capture_output=True,
		text=True,
		timeout=timeout,
	)
	assert result.returncode == 0, result.stderr[-3000:]
	return result


def start_worker(engine, stdout=subprocess.PIPE) -> subprocess.Popen:
	"""A real `worker` process (not burst) in a session (so a process group) of its own; its output
	goes to `stdout` (a pipe unless given an open file)."""
	return subprocess.Popen(
		[*CLI, "worker"],
		env=process_env(engine),
		stdout=stdout,
		stderr=subprocess.STDOUT,
		start_new_session=True,
	)


@pytest.fixture
def live_worker(engine, tmp_path):
	"""Starts real `worker` processes (not burst) for the engine; stops them after the test."""
	started = []

	def start() -> subprocess.Popen:
		log = open(tmp_path / f"worker-{len(started)}.log", "w")
		proc = start_worker(engine, stdout=log)
		started.append((proc, log))
		return proc

	yield start
	for proc, log in started:
		stop_worker(proc)
		log.close()


def stop_worker(proc: subprocess.Popen) -> None:
	"""Warm shutdown; then cold (a second SIGTERM kills a running work-horse); then SIGKILL."""
	for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
		if proc.poll() is not None:
			return
		with contextlib.suppress(ProcessLookupError):
			os.killpg(proc.pid, sig)
		try:
			proc.wait(timeout=5)
		except subprocess.TimeoutExpired:
			pass
	if proc.poll() is None:
		pytest.fail(f"worker pid {proc.pid} still runs after SIGTERM, SIGTERM and SIGKILL (5 s each)")


def wait_until(predicate, timeout: float, what, interval: float = 0.05):
	"""Poll `predicate` until it returns something truthy; fail saying `what` (a str or a callable
	describing the current state) when `timeout` seconds pass first."""
	deadline = time.monotonic() + timeout
	while True:
		value = predicate()
		if value:
			return value
		if time.monotonic() > deadline:
			pytest.fail(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
		time.sleep(interval)


def process_gone(pid: int) -> bool:
	try:
		os.kill(pid, 0)
	except ProcessLookupError:
		return True
	try:
		with open(f"/proc/{pid}/stat") as stat:
			return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie waiting to be reaped
	except (FileNotFoundError, ProcessLookupError):  # reaped between the two looks (ESRCH on read)
		return True


def wait_for_work_horse(engine, job_id: str, marker, what: str = "the job to start and write its pid") -> int:
	"""Wait until the job runs and its handler has written its work-horse's pid to `marker`; the pid."""
	wait_until(
		lambda: marker.exists() and marker.read_text() and engine.status(job_id)["status"] == "Running",
		30,
		what,
	)
	return int(marker.read_text())


def kill_worker_and_work_horse(worker: subprocess.Popen, horse_pid: int) -> None:
	"""The machine dies: SIGKILL to the worker's process group and to its work-horse's (RQ puts each
	work-horse in a process group of its own); returns once both are gone."""
	os.killpg(os.getpgid(worker.pid), signal.SIGKILL)
	os.killpg(os.getpgid(horse_pid), signal.SIGKILL)
	worker.wait(timeout=10)
	wait_until(lambda: process_gone(horse_pid), 10, f"work-horse {horse_pid} to die")


def statuses(engine, job_id: str) -> list[str]:
	"""The statuses a job went through, from its history."""
	return [e["to_status"] for e in engine.history(job_id)["entries"]]


def registered_types() -> set[str]:
	return set(registry.specs)
