"""A million jobs: the engine's reads, submit, scheduler and purge on a database of a real site's size.

Fills a fresh database with N Background Jobs (default 1,000,000) and their Job Execution Log rows
(about five each: hash-chained, as the engine writes them) over 100 organizations and 30 days,
then times the engine's public API, the code the CLI and the REST API run: submit, list_jobs,
status, history, metrics.collect, scheduler.tick and cleanup.purge. The purge runs while a real
`worker` process keeps running jobs that another process keeps submitting. The database is dropped
at the end (unless --keep).

The fill does not go through submit: rows are written as TSV files bucketed by name, sorted, and
bulk-loaded (LOAD DATA LOCAL INFILE on MariaDB, COPY on PostgreSQL) with the secondary indexes
dropped, which create_schema() then rebuilds. Each row is named from its creation time, as the
engine names rows (transitions.new_name: time-ordered, then random).

	.venv/bin/python benchmarks/million.py --db mariadb
	.venv/bin/python benchmarks/million.py --db mariadb --jobs 2000 --purge 600   # a smoke run
"""

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from dartwing.dartwing_core.background_jobs import admin, audit, cleanup, metrics, scheduler, states
from dartwing.dartwing_core.background_jobs.backends.sql_url import normalize_url
from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.engine import utcnow
from dartwing.dartwing_core.background_jobs.registry import import_handler_modules
from dartwing.dartwing_core.background_jobs.settings import Settings
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG, new_name

SAMPLES = "dartwing.dartwing_core.background_jobs.samples"
import_handler_modules([SAMPLES])
REDIS_URL = os.environ.get("DARTWING_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVERS = {
	"mariadb": normalize_url(os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/")),
	"postgresql": os.environ.get(
		"BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
	),
}
# Unfinished jobs: a busy site's backlog, all recent.
UNFINISHED = {"Queued": 2000, "Running": 400, "Pending": 1000, "Failed": 800, "Timed Out": 200}
TERMINAL_MIX = (("Completed", 0.94), ("Canceled", 0.035), ("Dead Letter", 0.025))
JOB_TYPES = ("sample_job", "flaky_job", "broken_job", "slow_job", "long_job", "noop")
TARGETS_MS = {
	"submit": 10,
	"list (organization, status)": 50,
	"status": 10,
	"history": 20,
	"metrics (one organization)": 200,
	"metrics (all)": 200,
	"scheduler tick, 100 due retries": 100,
	"purge: one batch (lock held)": 100,
}


def _epoch(naive_utc: datetime) -> float:
	return naive_utc.replace(tzinfo=timezone.utc).timestamp()


def nearest_rank(values: list[float], percent: int) -> float:
	ordered = sorted(values)
	return ordered[max(0, math.ceil(percent * len(ordered) / 100) - 1)]


# -- the fill ---------------------------------------------------------------------------------


class Buckets:
	"""TSV files of rows bucketed by the time in their (time-ordered) name, 256 slices of the
	fill's span, so each bucket can be sorted in memory and loaded in primary-key order."""

	def __init__(self, folder: Path, table: str, first: datetime, last: datetime):
		self.folder = folder / table
		self.folder.mkdir()
		self.first, self.span = _epoch(first) * 1000, max(1.0, (_epoch(last) - _epoch(first)) * 1000)
		self.files = {f"{i:03d}": open(self.folder / f"{i:03d}.tsv", "w") for i in range(256)}

	def write(self, values: list) -> None:
		slice_ = int((int(values[0][:11], 16) - self.first) * 256 // self.span)
		self.files[f"{min(255, max(0, slice_)):03d}"].write("\t".join(map(_tsv, values)) + "\n")

	def sorted_files(self) -> Iterator[Path]:
		for key, handle in self.files.items():
			handle.close()
			path = self.folder / f"{key}.tsv"
			lines = path.read_text().splitlines(keepends=True)
			lines.sort()
			path.write_text("".join(lines))
			yield path
			path.unlink()


def _tsv(value) -> str:
	"""Text format of both LOAD DATA and COPY: \\N is NULL, backslash escapes."""
	if value is None:
		return "\\N"
	if isinstance(value, datetime):
		return value.strftime("%Y-%m-%d %H:%M:%S.%f")
	text = str(value)
	if any(c in text for c in "\\\t\n\r"):
		text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
	return text


class Filler:
	"""Rows as the engine would have written them: each job's transitions are log rows chained
	with audit.entry_hash, and the job's fields agree with its last transition."""

	def __init__(self, engine, jobs: int, organizations: list[str], days: float, now: datetime, seed: int):
		self.engine, self.jobs, self.days, self.now = engine, jobs, days, now
		self.rng = random.Random(seed)
		self.orgs = organizations
		# Organizations of different sizes: the largest holds about 5x the smallest.
		self.org_weights = [1 / math.sqrt(k + 1) for k in range(len(organizations))]
		self.job_columns = [c.name for c in engine.store.tables[JOB].columns]
		self.log_columns = [c.name for c in engine.store.tables[LOG].columns]
		self.logs = 0
		self.running: list[str] = []
		self.sample: list[str] = []  # about 4,000 random job names, to read back
		self.terminal_ended: list[datetime] = []
		self.due_candidates: list[str] = []  # Failed jobs the tick benchmark makes due

	def run(self, folder: Path) -> None:
		first = self.now - timedelta(days=self.days)
		job_files, log_files = (Buckets(folder, table, first, self.now) for table in ("jobs", "logs"))
		self.job_files, self.log_files = job_files, log_files
		plan = [s for s, n in UNFINISHED.items() if s != "Pending" for _ in range(self._scaled(n))]
		plan += ["Pending"] * self._scaled(UNFINISHED["Pending"])  # after Running: they wait on one
		terminal, weights = zip(*TERMINAL_MIX, strict=True)
		rest = self.jobs - len(plan)
		plan = self.rng.choices(terminal, weights, k=rest) + plan
		for index, status in enumerate(plan):
			self._job(index, status)
		self.job_paths, self.log_paths = job_files.sorted_files, log_files.sorted_files

	def _scaled(self, count: int) -> int:
		return max(1, count * self.jobs // 1_000_000)

	def _job(self, index: int, status: str) -> None:
		rng, now = self.rng, self.now
		unfinished = status not in states.TERMINAL
		age = (
			timedelta(seconds=rng.uniform(5, 900))
			if unfinished
			else timedelta(days=rng.uniform(0, self.days))
		)
		created = now - age
		org = rng.choices(self.orgs, self.org_weights)[0]
		job_type = "noop" if unfinished else rng.choice(JOB_TYPES)
		if status in ("Failed", "Timed Out"):
			job_type = "flaky_job"
		params = {"n": index} if job_type in ("noop",) else {"label": f"r{index}"}
		if job_type == "flaky_job":
			params = {"failures": 0, "label": f"r{index}"}
		if job_type == "broken_job":
			params = {"reason": f"invalid input file r{index}"}
		if job_type == "slow_job":
			params = {"seconds": index % 60}
		canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
		job_hash = hashlib.sha256(f"{job_type}\0{org}\0{canonical}".encode()).hexdigest()
		user = f"user{rng.randrange(20)}@{org}"
		name = new_name(_epoch(created))
		job = {
			"name": name,
			"creation": created,
			"owner": user,
			"modified_by": user,
			"docstatus": 0,
			"idx": 0,
			"job_type": job_type,
			"organization": org,
			"priority": rng.choices(states.PRIORITIES, (1, 6, 85, 8))[0],
			"owner_user": user,
			"triggered_by": rng.choice(("api", "api", "desk", "scheduler")),
			"input_parameters": canonical,
			"job_hash": job_hash,
			"active_hash": job_hash if unfinished else None,
			"max_retries": 3,
			"timeout_seconds": 300,
			"retry_count": 0,
			"progress": 0,
		}
		steps = self._steps(status, job_type)
		t, entries, chain = created, [], audit.GENESIS
		previous = None
		for to_status, attempt in steps:
			if to_status == "Running":
				t += timedelta(seconds=min(600, rng.lognormvariate(math.log(0.3), 1.2)))
				job["started_at"] = t
			elif to_status in ("Completed", "Failed", "Timed Out", "Dead Letter") and previous == "Running":
				t += timedelta(seconds=min(3600, rng.lognormvariate(math.log(2), 1.3)))
			elif to_status == "Queued" and previous is not None:
				t += timedelta(seconds=5 * 2 ** (attempt - 1))  # the retry's backoff
			elif to_status == "Canceled":
				t += timedelta(seconds=rng.uniform(1, 600))
			if unfinished:
				t = min(t, now - timedelta(seconds=1))
			row = {
				"name": new_name(_epoch(t)),
				"background_job": name,
				"sequence": len(entries) + 1,
				"from_status": previous,
				"to_status": to_status,
				"timestamp": t,
				"actor": user if previous is None or to_status == "Canceled" else "worker",
				"message": _message(to_status, previous, user, attempt),
				"retry_attempt": attempt,
				"previous_hash": chain,
			}
			row["entry_hash"] = chain = audit.entry_hash(chain, row)
			row.update(
				creation=t, modified=t, owner=row["actor"], modified_by=row["actor"], docstatus=0, idx=0
			)
			entries.append(row)
			if to_status == "Queued":
				job["queued_at"] = t
			previous = to_status
		job.update(
			status=status,
			modified=t,
			transition_count=len(entries),
			chain_head=chain,
			retry_count=steps[-1][1],
			queue_job_id=f"{name}-{len(entries)}" if status in ("Queued", "Running") else None,
		)
		if status == "Completed":
			job.update(completed_at=t, progress=100, result=json.dumps({"rows": index % 977}))
			job["output_reference"] = f"/files/{job_type}-{name}.txt"
		elif status == "Dead Letter":
			job.update(completed_at=t, error_type=rng.choice(("Transient", "Permanent")))
			job.update(error_message="upstream refused: 503", error_traceback=_TRACEBACK)
		elif status == "Canceled":
			job.update(canceled_at=t, canceled_by=user, completed_at=t)
		elif status in ("Failed", "Timed Out"):
			job.update(error_type="Transient", error_message="upstream busy", completed_at=t)
			job["next_retry_at"] = now + timedelta(hours=rng.uniform(2, 12))  # not due during the run
			self.due_candidates.append(name)
		elif status == "Running":
			job.update(worker_name=f"host-{index % 4}:{1000 + index % 50}", heartbeat_at=now, progress=40)
			# Healthy long jobs: the fill cannot send heartbeats, so their leases run past the run.
			job["lease_expires_at"] = now + timedelta(days=1)
			self.running.append(name)
		elif status == "Pending":
			job["depends_on"] = rng.choice(self.running)
		if status in states.TERMINAL:
			self.terminal_ended.append(t)
		if rng.random() < 4000 / self.jobs:
			self.sample.append(name)
		self.job_files.write([job.get(c) for c in self.job_columns])
		for row in entries:
			self.log_files.write([row.get(c) for c in self.log_columns])
		self.logs += len(entries)

	def _steps(self, status: str, job_type: str) -> list[tuple[str, int]]:
		"""The statuses a job went through, with the retry count of each."""
		if status == "Pending":
			return [("Pending", 0)]
		if status == "Canceled":
			return [("Queued", 0), ("Canceled", 0)]
		retries = {
			"Completed": self.rng.choices((0, 1, 2, 3), (55, 30, 10, 5))[0],
			"Dead Letter": 0 if job_type == "broken_job" else 3,
			"Queued": 0,
			"Running": 0,
			"Failed": 0,
			"Timed Out": 0,
		}[status]
		steps = [("Queued", 0)]
		for attempt in range(retries):
			steps += [("Running", attempt), ("Failed", attempt + 1), ("Queued", attempt + 1)]
		if status == "Queued":
			return steps
		steps.append(("Running", retries))
		if status != "Running":
			steps.append((status, retries + (status in ("Failed", "Timed Out"))))
		return steps


_TRACEBACK = (
	'Traceback (most recent call last):\n  File "handlers.py", line 42, in export\n'
	"    response.raise_for_status()\nrequests.exceptions.HTTPError: 503 Server Error\n"
)


def _message(to_status: str, previous: str | None, user: str, attempt: int) -> str:
	if previous is None:
		return f"Submitted by {user}"
	return {
		"Running": "Job started",
		"Completed": "Job succeeded in 2.1s",
		"Failed": "Job failed: upstream busy",
		"Timed Out": "Job timed out after 300s",
		"Dead Letter": "Job failed: upstream refused: 503",
		"Queued": f"Retry {attempt}/3",
		"Canceled": f"Canceled by {user}",
	}[to_status]


def bulk_load(kind: str, store, table: str, columns: list[str], paths: Iterator[Path]) -> None:
	raw = store.engine.raw_connection()
	try:
		cursor = raw.cursor()
		if kind == "mariadb":
			cursor.execute("SET SESSION unique_checks = 0")
		for path in paths:
			if kind == "mariadb":
				listed = ", ".join(f"`{c}`" for c in columns)
				cursor.execute(
					f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE `{table}` "
					f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({listed})"
				)
			else:
				listed = ", ".join(f'"{c}"' for c in columns)
				with cursor.copy(f'COPY "{table}" ({listed}) FROM STDIN') as copy:
					copy.write(path.read_bytes())
			raw.commit()
	finally:
		raw.close()


def fill(kind: str, engine, jobs: int, orgs: int, days: float, seed: int) -> Filler:
	store = engine.store
	organizations = [f"org-{k:03d}" for k in range(orgs)]
	for org in organizations:
		admin.add_organization(engine, org)
	started = time.perf_counter()
	with tempfile.TemporaryDirectory(prefix="dartwing-million-") as folder:
		filler = Filler(engine, jobs, organizations, days, utcnow(), seed)
		filler.run(Path(folder))
		generated = time.perf_counter()
		# Secondary indexes are built once at the end (sorted), not row by row.
		with store.engine.begin() as conn:
			for doctype in (JOB, LOG):
				for index in store.tables[doctype].indexes:
					index.drop(conn)
		bulk_load(kind, store, f"tab{JOB}", filler.job_columns, filler.job_paths())
		bulk_load(kind, store, f"tab{LOG}", filler.log_columns, filler.log_paths())
	loaded = time.perf_counter()
	store.create_schema()  # the indexes back
	# Statistics, as a month-old table has them; on PostgreSQL also the visibility map and hint
	# bits that autovacuum would have set on a month of rows (without them an index-only count
	# reads every heap page, and the first reads of each page write it back).
	with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
		for doctype in (JOB, LOG):
			conn.exec_driver_sql(
				("ANALYZE TABLE `tab{}`" if kind == "mariadb" else 'VACUUM ANALYZE "tab{}"').format(doctype)
			)
	done = time.perf_counter()
	print(
		f"fill: {jobs} jobs, {filler.logs} log rows over {orgs} organizations and {days:g} days in "
		f"{done - started:.0f} s (generate {generated - started:.0f} s, load {loaded - generated:.0f} s, "
		f"indexes {done - loaded:.0f} s)",
		flush=True,
	)
	# The backlog is real: every Queued row has its message in Redis, as on a healthy site.
	for name in store.get_all(JOB, [("status", "=", states.QUEUED)], ["name"]):
		engine.dispatch(engine.get_job(name["name"]))
	return filler


# -- timing -----------------------------------------------------------------------------------


def timed(call: Callable[[], object], repeat: int, before: Callable[[], object] | None = None) -> list[float]:
	"""Milliseconds of each call (`before` runs untimed ahead of each)."""
	out = []
	for _ in range(repeat):
		if before:
			before()
		started = time.perf_counter()
		call()
		out.append((time.perf_counter() - started) * 1000)
	return out


def measure(engine, filler: Filler, rng: random.Random, samples: int) -> dict[str, list[float]]:
	results: dict[str, list[float]] = {}
	orgs = filler.orgs
	counter = iter(range(10**9))
	results["submit"] = timed(
		lambda: engine.submit("noop", rng.choice(orgs), {"n": -1 - next(counter)}), samples * 2
	)
	results["list (organization, status)"] = timed(
		lambda: engine.list_jobs(organization=rng.choice(orgs), status="Completed"), samples
	)
	results["status"] = timed(lambda: engine.status(rng.choice(filler.sample)), samples * 2)
	results["history"] = timed(lambda: engine.history(rng.choice(filler.sample)), samples * 2)
	results["metrics (one organization)"] = timed(
		lambda: metrics.collect(engine, rng.choice(orgs)), max(10, samples // 5)
	)
	results["metrics (all)"] = timed(lambda: metrics.collect(engine), max(5, samples // 10))
	scheduler.tick(engine)  # the first pass redispatches nothing and warms up; then 100 due each
	due = list(filler.due_candidates)
	rng.shuffle(due)
	ticks, moved = [], []

	def make_due() -> None:
		batch = [due.pop() for _ in range(min(100, len(due)))]
		past = engine.now() - timedelta(seconds=1)
		with engine.store.transaction():
			for name in batch:
				engine.store.update(JOB, name, {"next_retry_at": past})

	def tick() -> None:
		moved.append(scheduler.tick(engine)["requeue_due_retries"])

	ticks = timed(tick, max(1, min(10, len(due) // 100 - 1)), before=make_due)  # 100 left for below
	results["scheduler tick, 100 due retries"] = ticks
	# Where a tick's time goes: each task once more, timed alone, with 100 retries due again.
	if due:
		make_due()
		parts = {}
		for task in scheduler.TASKS:
			started = time.perf_counter()
			task(engine)
			parts[task.__name__] = round((time.perf_counter() - started) * 1000, 1)
		print(f"scheduler: one pass per task, ms {parts}", flush=True)
	print(f"scheduler: retries requeued per tick {moved}", flush=True)
	return results


def worker_process(engine) -> subprocess.Popen:
	env = dict(
		os.environ,
		DARTWING_DB_URL=engine.store.url,
		DARTWING_REDIS_URL=REDIS_URL,
		DARTWING_QUEUE_PREFIX=engine.settings.queue_prefix,
		DARTWING_IMPORTS=SAMPLES,
	)
	return subprocess.Popen(
		[sys.executable, "-m", "dartwing.dartwing_core.background_jobs", "worker"],
		env=env,
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
		start_new_session=True,
	)


def submit_loop(url: str, queue_prefix: str, orgs: list[str], stop, submitted) -> None:
	"""A job every 20 ms until `stop`, in a process of its own; `submitted` counts them. (The
	spawned process imports this module again, which imports the sample handlers.)"""
	engine = build_engine(url, REDIS_URL, replace(Settings.from_env(), queue_prefix=queue_prefix))
	n = 0
	while not stop.is_set():
		n += 1
		engine.submit("noop", orgs[n % len(orgs)], {"n": 10**9 + n})
		with submitted.get_lock():
			submitted.value += 1
		time.sleep(0.02)
	engine.store.engine.dispose()


def measure_purge(engine, url: str, filler: Filler, purge: int) -> tuple[list[float], dict]:
	"""cleanup.purge of the `purge` oldest finished jobs while a worker runs the jobs another
	process submits. Each batch is one transaction: its duration bounds how long it holds its row
	locks."""
	ordered = sorted(filler.terminal_ended)
	cutoff = ordered[min(purge, len(ordered)) - 1] + timedelta(microseconds=1)
	store = engine.store
	batches: list[float] = []
	original = store.transaction

	@contextmanager
	def timed_transaction():
		started = time.perf_counter()
		with original():
			yield
		batches.append((time.perf_counter() - started) * 1000)

	# The submitter is a process of its own, as a site's web requests are: a thread here would
	# share this process's GIL with the purge and lengthen its batches by its own Python time.
	spawn = multiprocessing.get_context("spawn")
	stop, submitted = spawn.Event(), spawn.Value("i", 0)
	submitter = spawn.Process(
		target=submit_loop, args=(url, engine.settings.queue_prefix, filler.orgs, stop, submitted)
	)
	worker = worker_process(engine)
	try:
		time.sleep(3)  # the worker starts
		submitter.start()
		time.sleep(2)
		store.transaction = timed_transaction
		started, wall = engine.now(), time.perf_counter()
		older_than = (engine.now() - cutoff).total_seconds() / 86400
		deleted = cleanup.purge(engine, older_than_days=older_than)
		wall, ended = time.perf_counter() - wall, engine.now()
	finally:
		store.transaction = original
		stop.set()
		submitter.join(30)
		os.killpg(worker.pid, signal.SIGTERM)
		try:
			worker.wait(30)
		except subprocess.TimeoutExpired:
			os.killpg(worker.pid, signal.SIGKILL)
			worker.wait()
	completed = store.count(
		JOB,
		[("status", "=", states.COMPLETED), ("completed_at", ">=", started), ("completed_at", "<=", ended)],
	)
	report = {
		"deleted": deleted,
		"seconds": wall,
		"batches": len(batches),
		"completed_during": completed,
		"submitted_during": submitted.value,
	}
	return batches, report


# -- running ----------------------------------------------------------------------------------


@contextmanager
def database(kind: str) -> Iterator[str]:
	base = sa.engine.make_url(SERVERS[kind])
	name = f"dartwing_million_{uuid.uuid4().hex[:8]}"
	admin_engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
	with admin_engine.connect() as conn:
		conn.exec_driver_sql(f"CREATE DATABASE {name}")
	url = base.set(database=name)
	if kind == "mariadb":
		url = url.update_query_dict({"local_infile": "1"})
	try:
		yield url.render_as_string(hide_password=False)
	finally:
		with admin_engine.connect() as conn:
			force = " WITH (FORCE)" if kind == "postgresql" else ""
			conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
		admin_engine.dispose()


def report(kind: str, results: dict[str, list[float]]) -> None:
	print(f"\n{kind}: operation{'':31} {'n':>5} {'median ms':>10} {'p99 ms':>10} {'target ms':>10}  met?")
	for operation, values in results.items():
		target = TARGETS_MS[operation]
		# The purge's target is its longest batch; the others' their p99.
		worst = max(values) if operation.startswith("purge") else nearest_rank(values, 99)
		print(
			f"{'':{len(kind) + 2}}{operation:40} {len(values):5d} {statistics.median(values):10.1f} "
			f"{worst:10.1f} {'< ' + str(target):>10}  {'yes' if worst < target else 'NO'}"
		)


def run(kind: str, args) -> None:
	with database(kind) as url:
		settings = replace(Settings.from_env(), queue_prefix=f"dwmillion-{uuid.uuid4().hex[:6]}")
		engine = build_engine(url, REDIS_URL, settings)
		try:
			engine.store.create_schema()
			admin.sync_job_types(engine)
			filler = fill(kind, engine, args.jobs, args.orgs, args.days, args.seed)
			rng = random.Random(args.seed)
			results = measure(engine, filler, rng, args.samples)
			batches, purged = measure_purge(engine, url, filler, args.purge)
			results["purge: one batch (lock held)"] = batches
			report(kind, results)
			print(
				f"{'':{len(kind) + 2}}purge: {purged['deleted']} jobs in {purged['seconds']:.1f} s, "
				f"{purged['batches']} batches; meanwhile {purged['submitted_during']} jobs submitted "
				f"and {purged['completed_during']} completed by the worker; batches p99 "
				f"{nearest_rank(batches, 99):.1f} ms, {sum(b > 100 for b in batches)} over 100 ms, "
				f"longest five {', '.join(f'{b:.0f}' for b in sorted(batches)[-5:])} ms",
				flush=True,
			)
			if args.keep:
				print(f"kept: {url}; press Ctrl-C to drop it")
				signal.pause()
		finally:
			for queue in engine.queue.queues.values():
				queue.delete(delete_jobs=True)
			for key in engine.lock_client.scan_iter(f"{settings.queue_prefix}:*"):
				engine.lock_client.delete(key)
			engine.store.engine.dispose()


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	parser.add_argument("--db", default="mariadb", help="mariadb, postgresql, or both comma-separated")
	parser.add_argument("--jobs", type=int, default=1_000_000)
	parser.add_argument("--orgs", type=int, default=100)
	parser.add_argument("--days", type=float, default=30)
	parser.add_argument("--purge", type=int, default=300_000, help="finished jobs the purge deletes")
	parser.add_argument("--samples", type=int, default=200, help="calls timed per read operation")
	parser.add_argument("--seed", type=int, default=1)
	parser.add_argument("--keep", action="store_true", help="keep the database until Ctrl-C")
	args = parser.parse_args()
	for kind in args.db.split(","):
		run(kind.strip(), args)


if __name__ == "__main__":
	main()
