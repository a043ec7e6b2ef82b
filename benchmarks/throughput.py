"""Throughput of the engine's workers against raw RQ's, measured in one run with the same workers.

For each database and round, N no-op jobs are drained by W burst workers of each kind in turn:
raw RQ's forking `Worker` and its `SimpleWorker` (no fork), over an RQ queue filled by `enqueue`;
then the engine's default worker (long-lived children) and its `--fork-per-job` worker, each
over N jobs submitted through the engine (with full bookkeeping: claim, lease, log, settle), with
one engine scheduler running. Prints jobs/s of each, the engine's ratios to both raw workers
(the median of the rounds' ratios, and their range), CPU and page faults per job, and submit
latency. Each drain is timed from the first work loop starting to the last one's ending, as the
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
	runs inside the workers); commands the Redis server executed during the loops, from every
	client (the engine's scheduler included) and inside scripts (barely noisy)."""

	wall: float
	cpu: float
	faults: int
	server_cpu: float
	redis_commands: int


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


def drain(kind: str, mode: str, raw_queue: str, workers: int, env: dict, tmp: Path) -> Usage:
	"""Start `workers` burst workers, wait until all have exited, and return what their work
	loops cost (worker.py reports each loop): from the first loop's start to the last one's end,
	so Python's start-up, imports and the engine's warm-up are not counted as throughput."""
	report = tmp / f"drain-{uuid.uuid4().hex[:8]}.jsonl"
	server_before = _server_cpu(kind)
	# The engine's default worker is one process with `workers` children, as deployed; the
	# others are `workers` processes, as `rq worker` is started.
	commands = [[mode, raw_queue, str(workers)]] if mode == "engine" else [[mode, raw_queue]] * workers
	procs = [
		subprocess.Popen(
			[sys.executable, str(HERE / "worker.py"), *command], env={**env, "BENCH_REPORT": str(report)}
		)
		for command in commands
	]
	for proc in procs:
		if proc.wait() != 0:
			raise SystemExit(f"benchmark worker exited with {proc.returncode}")
	server_cpu = _server_cpu(kind) - server_before
	loops = [json.loads(line) for line in report.read_text().splitlines()]
	if len(loops) != workers:
		raise SystemExit(f"{len(loops)} of {workers} benchmark workers reported")
	return Usage(
		max(loop["end"] for loop in loops) - min(loop["start"] for loop in loops),
		sum(loop["cpu"] for loop in loops),
		sum(loop["faults"] for loop in loops),
		server_cpu,
		max(loop["redis_end"] for loop in loops) - min(loop["redis_start"] for loop in loops),
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


RAW_MODES = ("raw", "raw-simple")
ENGINE_MODES = ("engine", "engine-fork")
MODES = RAW_MODES + ENGINE_MODES
LABELS = {
	"raw": "raw RQ Worker (fork per job)",
	"raw-simple": "raw RQ SimpleWorker",
	"engine": "engine, default (children)",
	"engine-fork": "engine, --fork-per-job",
}


def run_round(kind: str, engine, env: dict, jobs: int, workers: int, round_no: int, tmp: Path) -> dict:
	"""One drain of `jobs` no-op jobs per mode; figures keyed "<mode>:<figure>"."""
	raw_name = f"{engine.settings.queue_prefix}-raw"
	raw_queue = Queue(raw_name, connection=engine.queue.redis)
	figures, usage = {}, {}
	enqueue_latency = []
	for mode in RAW_MODES:
		for _ in range(jobs):
			t0 = time.perf_counter()
			raw_queue.enqueue_call(func="os.getpid", result_ttl=0)
			enqueue_latency.append(time.perf_counter() - t0)
		usage[mode] = drain(kind, mode, raw_name, workers, env, tmp)
		assert raw_queue.count == 0

	# The engine runs as deployed: with its scheduler (which also checkpoints SQLite's WAL).
	scheduler = subprocess.Popen(
		[sys.executable, "-m", "dartwing.dartwing_core.background_jobs", "scheduler"], env=env
	)
	time.sleep(3)  # let it start (imports take ~1 s of CPU) before anything is timed
	submit_latency = []
	try:
		for number, mode in enumerate(ENGINE_MODES):
			first = (round_no * len(ENGINE_MODES) + number) * jobs
			for i in range(jobs):
				t0 = time.perf_counter()
				engine.submit("noop", "Bench", {"n": first + i}, triggered_by="benchmark")
				submit_latency.append(time.perf_counter() - t0)
			usage[mode] = drain(kind, mode, raw_name, workers, env, tmp)
			completed = engine.store.count(JOB, [("status", "=", states.COMPLETED)])
			if completed != first + jobs:
				raise SystemExit(f"only {completed} of {first + jobs} engine jobs completed")
	finally:
		scheduler.terminate()
		scheduler.wait()
	for mode, used in usage.items():
		figures[f"{mode}:jobs_per_s"] = jobs / used.wall
		figures[f"{mode}:cpu_ms_per_job"] = used.cpu / jobs * 1000
		figures[f"{mode}:faults_per_job"] = used.faults / jobs
		figures[f"{mode}:server_cpu_ms_per_job"] = used.server_cpu / jobs * 1000
		figures[f"{mode}:redis_commands_per_job"] = used.redis_commands / jobs
	for mode in ENGINE_MODES:
		for baseline in RAW_MODES:
			figures[f"{mode}:ratio_to_{baseline}"] = (
				figures[f"{mode}:jobs_per_s"] / figures[f"{baseline}:jobs_per_s"]
			)
	figures["enqueue_p50_ms"] = percentile(enqueue_latency, 0.5) * 1000
	figures["enqueue_p99_ms"] = percentile(enqueue_latency, 0.99) * 1000
	figures["submit_p50_ms"] = percentile(submit_latency, 0.5) * 1000
	figures["submit_p99_ms"] = percentile(submit_latency, 0.99) * 1000
	return figures


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
	"""Medians over rounds of every figure, with each ratio's lowest and highest round."""
	with (
		tempfile.TemporaryDirectory() as tmp,
		bench_engine(kind, Path(tmp), f"dwbench-{uuid.uuid4().hex[:6]}") as ready,
	):
		if ready is None:
			return None
		engine, env = ready
		results = [run_round(kind, engine, env, jobs, workers, r, Path(tmp)) for r in range(rounds)]
	summary = {key: statistics.median(r[key] for r in results) for key in results[0]}
	for key in [k for k in results[0] if ":ratio_to_" in k]:
		summary[f"{key}:range"] = (min(r[key] for r in results), max(r[key] for r in results))
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
		f"{args.jobs} no-op jobs per worker kind, {args.workers} workers of each kind, engine with one "
		f"scheduler running; median of {args.rounds} rounds; {os.cpu_count()} cores; "
		f"MariaDB through {sa.engine.make_url(MARIADB_URL).drivername}"
	)
	print(
		f"{'database':<11}{'workers':<31}{'jobs/s':>8}{'x raw Worker':>19}{'x SimpleWorker':>19}"
		f"{'worker CPU ms/job':>19}{'faults/job':>12}{'db CPU ms/job':>15}{'redis cmds/job':>16}"
	)
	for kind in args.db.split(","):
		s = bench_database(kind.strip(), args.jobs, args.workers, args.rounds)
		if not s:
			continue
		for mode in MODES:
			ratios = ""
			for baseline in RAW_MODES:
				if mode in ENGINE_MODES:
					low, high = s[f"{mode}:ratio_to_{baseline}:range"]
					ratios += f"{s[f'{mode}:ratio_to_{baseline}']:>6.2f} ({low:.2f}-{high:.2f})"
				else:
					ratios += f"{'':>19}"
			server = f"{s[f'{mode}:server_cpu_ms_per_job']:.2f}" if kind.strip() != "sqlite" else "in-process"
			print(
				f"{kind:<11}{LABELS[mode]:<31}{s[f'{mode}:jobs_per_s']:>8.1f}{ratios}"
				f"{s[f'{mode}:cpu_ms_per_job']:>19.1f}{s[f'{mode}:faults_per_job']:>12.0f}{server:>15}"
				f"{s[f'{mode}:redis_commands_per_job']:>16.1f}"
			)
		print(
			f"{kind:<11}submit p50 / p99 {s['submit_p50_ms']:.2f} / {s['submit_p99_ms']:.2f} ms; "
			f"rq enqueue p50 / p99 {s['enqueue_p50_ms']:.2f} / {s['enqueue_p99_ms']:.2f} ms"
		)


if __name__ == "__main__":
	main()
