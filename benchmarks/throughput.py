"""Throughput of the engine against raw RQ, measured in one run with the same workers.

For each database: N no-op jobs through raw RQ (enqueue, then W burst workers drain them), then
N no-op jobs through the engine (submit, then W burst workers of the same kind run them), for
several rounds. Prints jobs/s of both, their ratio (the median of the rounds' ratios, and their
range), and submit latency p50/p99. Medians over rounds.
Each drain is timed from the first worker's work loop starting to the last one's ending, as the
workers report it (benchmarks/worker.py): start-up, imports and warm-up are not throughput.

	.venv/bin/python benchmarks/throughput.py --jobs 500 --workers 2 --rounds 3 --db sqlite,mariadb
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa
from rq import Queue

from dartwing.dartwing_core.background_jobs import admin, states
from dartwing.dartwing_core.background_jobs.backends.sql_url import normalize_url
from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.registry import import_handler_modules
from dartwing.dartwing_core.background_jobs.settings import Settings
from dartwing.dartwing_core.background_jobs.transitions import JOB

HERE = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("DARTWING_REDIS_URL", "redis://127.0.0.1:6379/0")
MARIADB_URL = normalize_url(os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/"))
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def percentile(values: list[float], fraction: float) -> float:
	ordered = sorted(values)
	return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Usage(NamedTuple):
	"""What one drain's work loops cost: wall seconds; CPU seconds and minor page faults of the
	workers and their work-horses (far less sensitive to a noisy machine than wall time); CPU
	seconds of the local database server's processes during the whole drain (0 for SQLite, which
	runs inside the workers); commands the Redis server executed during the whole drain, from
	every client (the engine's scheduler included) and inside scripts (barely noisy)."""

	wall: float
	cpu: float
	faults: int
	server_cpu: float
	redis_commands: int


def _redis_commands(redis) -> int:
	"""Commands the Redis server has run so far (INFO commandstats), INFO itself excluded."""
	stats = redis.info("commandstats")
	return sum(stat["calls"] for name, stat in stats.items() if name != "cmdstat_info")


_SERVER_PROCESSES = {"mariadb": ("mariadbd", "mysqld"), "postgresql": ("postgres",)}


def _server_cpu(kind: str) -> float:
	"""CPU seconds used so far by the database server's processes on this machine, from /proc,
	with what their ended children used (PostgreSQL's backend of a closed connection exits)."""
	names, total = _SERVER_PROCESSES.get(kind, ()), 0
	for stat in Path("/proc").glob("[0-9]*/stat"):
		try:
			command, _, fields = stat.read_text().partition(") ")
		except OSError:
			continue  # the process ended
		if command.partition(" (")[2] in names:
			total += sum(int(ticks) for ticks in fields.split()[11:15])  # utime stime cutime cstime
	return total / os.sysconf("SC_CLK_TCK")


def drain(kind: str, mode: str, raw_queue: str, workers: int, env: dict, tmp: Path, redis) -> Usage:
	"""Start `workers` burst workers, wait until all have exited, and return what their work
	loops cost (worker.py reports each loop): from the first loop's start to the last one's end,
	so Python's start-up, imports and the engine's warm-up are not counted as throughput."""
	report = tmp / f"drain-{uuid.uuid4().hex[:8]}.jsonl"
	server_before, redis_before = _server_cpu(kind), _redis_commands(redis)
	procs = [
		subprocess.Popen(
			[sys.executable, str(HERE / "worker.py"), mode, raw_queue],
			env={**env, "BENCH_REPORT": str(report)},
		)
		for _ in range(workers)
	]
	for proc in procs:
		if proc.wait() != 0:
			raise SystemExit(f"benchmark worker exited with {proc.returncode}")
	server_cpu, redis_commands = _server_cpu(kind) - server_before, _redis_commands(redis) - redis_before
	loops = [json.loads(line) for line in report.read_text().splitlines()]
	if len(loops) != workers:
		raise SystemExit(f"{len(loops)} of {workers} benchmark workers reported")
	return Usage(
		max(loop["end"] for loop in loops) - min(loop["start"] for loop in loops),
		sum(loop["cpu"] for loop in loops),
		sum(loop["faults"] for loop in loops),
		server_cpu,
		redis_commands,
	)


def database_url(kind: str, tmp: Path) -> tuple[str, callable]:
	if kind == "sqlite":
		return f"sqlite:///{tmp / 'bench.db'}", lambda: None
	base = sa.engine.make_url(MARIADB_URL if kind == "mariadb" else POSTGRES_URL)
	name = f"dartwing_bench_{uuid.uuid4().hex[:8]}"
	server = sa.create_engine(base, isolation_level="AUTOCOMMIT")
	with server.connect() as conn:
		conn.exec_driver_sql(f"CREATE DATABASE {name}")

	def drop():
		with server.connect() as conn:
			conn.exec_driver_sql(f"DROP DATABASE {name}" + (" WITH (FORCE)" if kind == "postgresql" else ""))

	return base.set(database=name).render_as_string(hide_password=False), drop


def run_round(kind: str, engine, env: dict, jobs: int, workers: int, round_no: int, tmp: Path) -> dict:
	raw_name = f"{engine.settings.queue_prefix}-raw"
	raw_queue = Queue(raw_name, connection=engine.queue.redis)
	enqueue_latency = []
	for _ in range(jobs):
		t0 = time.perf_counter()
		raw_queue.enqueue_call(func="os.getpid", result_ttl=0)
		enqueue_latency.append(time.perf_counter() - t0)
	raw = drain(kind, "raw", raw_name, workers, env, tmp, engine.queue.redis)
	assert raw_queue.count == 0

	# The engine runs as deployed: with its scheduler (which also checkpoints SQLite's WAL).
	scheduler = subprocess.Popen(
		[sys.executable, "-m", "dartwing.dartwing_core.background_jobs", "scheduler"], env=env
	)
	time.sleep(3)  # let it start (imports take ~1 s of CPU) before anything is timed
	submit_latency = []
	for i in range(jobs):
		t0 = time.perf_counter()
		engine.submit("noop", "Bench", {"n": round_no * jobs + i}, triggered_by="benchmark")
		submit_latency.append(time.perf_counter() - t0)
	ours = drain(kind, "engine", raw_name, workers, env, tmp, engine.queue.redis)
	scheduler.terminate()
	scheduler.wait()
	completed = engine.store.count(JOB, [("status", "=", states.COMPLETED)])
	if completed != (round_no + 1) * jobs:
		raise SystemExit(f"only {completed} of {(round_no + 1) * jobs} engine jobs completed")
	return {
		"raw_jobs_per_s": jobs / raw.wall,
		"engine_jobs_per_s": jobs / ours.wall,
		"raw_cpu_ms_per_job": raw.cpu / jobs * 1000,
		"engine_cpu_ms_per_job": ours.cpu / jobs * 1000,
		"raw_faults_per_job": raw.faults / jobs,
		"engine_faults_per_job": ours.faults / jobs,
		"engine_server_cpu_ms_per_job": ours.server_cpu / jobs * 1000,
		"raw_redis_commands_per_job": raw.redis_commands / jobs,
		"engine_redis_commands_per_job": ours.redis_commands / jobs,
		"enqueue_p50_ms": percentile(enqueue_latency, 0.5) * 1000,
		"enqueue_p99_ms": percentile(enqueue_latency, 0.99) * 1000,
		"submit_p50_ms": percentile(submit_latency, 0.5) * 1000,
		"submit_p99_ms": percentile(submit_latency, 0.99) * 1000,
	}


@contextmanager
def bench_engine(kind: str, tmp: Path, prefix: str) -> Iterator[tuple[object, dict] | None]:
	"""An engine on a fresh database of `kind` (schema, job types, organization "Bench") with its
	own queue prefix, and the environment that makes a worker process build the same engine; None
	when the database is not reachable. Queues and database go away afterwards."""
	try:
		url, drop = database_url(kind, tmp)
	except Exception as exc:
		print(f"{kind}: skipped, not reachable ({type(exc).__name__}: {exc})")
		yield None
		return
	engine = build_engine(url, REDIS_URL, replace(Settings.from_env(), queue_prefix=prefix))
	env = {
		**os.environ,
		"DARTWING_DB_URL": url,
		"DARTWING_REDIS_URL": REDIS_URL,
		"DARTWING_QUEUE_PREFIX": prefix,
	}
	try:
		engine.store.create_schema()
		admin.sync_job_types(engine)
		admin.add_organization(engine, "Bench", max_queued_jobs=0)
		yield engine, env
	finally:
		for queue in [*engine.queue.queues.values(), Queue(f"{prefix}-raw", connection=engine.queue.redis)]:
			queue.delete(delete_jobs=True)
		engine.store.engine.dispose()
		drop()


def bench_database(kind: str, jobs: int, workers: int, rounds: int) -> dict | None:
	with (
		tempfile.TemporaryDirectory() as tmp,
		bench_engine(kind, Path(tmp), f"dwbench-{uuid.uuid4().hex[:6]}") as ready,
	):
		if ready is None:
			return None
		engine, env = ready
		results = [run_round(kind, engine, env, jobs, workers, r, Path(tmp)) for r in range(rounds)]
	summary = {key: statistics.median(r[key] for r in results) for key in results[0]}
	ratios = [r["engine_jobs_per_s"] / r["raw_jobs_per_s"] for r in results]
	summary["ratio"], summary["ratio_min"], summary["ratio_max"] = (
		statistics.median(ratios),
		min(ratios),
		max(ratios),
	)
	return summary


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--jobs", type=int, default=500)
	parser.add_argument("--workers", type=int, default=2)
	parser.add_argument("--rounds", type=int, default=3)
	parser.add_argument("--db", default="sqlite,mariadb")
	args = parser.parse_args()
	import_handler_modules(["dartwing.dartwing_core.background_jobs.samples"])
	print(
		f"{args.jobs} no-op jobs, {args.workers} RQ workers (rq.Worker, a forked work-horse per job), "
		f"engine with one scheduler running; median of {args.rounds} rounds; {os.cpu_count()} cores; "
		f"MariaDB through {sa.engine.make_url(MARIADB_URL).drivername}"
	)
	print(
		f"{'database':<11}{'raw RQ jobs/s':>14}{'engine jobs/s':>14}{'ratio':>7}{'ratio range':>12}"
		f"{'worker CPU ms/job raw / engine':>32}{'faults/job raw / engine':>25}{'db server CPU ms/job':>22}"
		f"{'redis cmds/job raw / engine':>29}{'submit p50 / p99 ms':>21}{'rq enqueue p50 / p99 ms':>25}"
	)
	for kind in args.db.split(","):
		s = bench_database(kind.strip(), args.jobs, args.workers, args.rounds)
		if s:
			spread = f"{s['ratio_min']:.2f}-{s['ratio_max']:.2f}"
			cpu = f"{s['raw_cpu_ms_per_job']:.1f} / {s['engine_cpu_ms_per_job']:.1f}"
			faults = f"{s['raw_faults_per_job']:.0f} / {s['engine_faults_per_job']:.0f}"
			server = (
				f"{s['engine_server_cpu_ms_per_job']:.2f}" if kind.strip() != "sqlite" else "(in-process)"
			)
			commands = f"{s['raw_redis_commands_per_job']:.1f} / {s['engine_redis_commands_per_job']:.1f}"
			submit = f"{s['submit_p50_ms']:.2f} / {s['submit_p99_ms']:.2f}"
			enqueue = f"{s['enqueue_p50_ms']:.2f} / {s['enqueue_p99_ms']:.2f}"
			print(
				f"{kind:<11}{s['raw_jobs_per_s']:>14.1f}{s['engine_jobs_per_s']:>14.1f}{s['ratio']:>7.2f}"
				f"{spread:>12}"
				f"{cpu:>32}{faults:>25}{server:>22}{commands:>29}{submit:>21}{enqueue:>25}"
			)


if __name__ == "__main__":
	main()
