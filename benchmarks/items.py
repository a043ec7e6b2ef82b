"""One job of 100,000 no-op items (ctx.each): how fast the engine records and runs them, its
overhead per item, and the worker's memory while it runs.

The job runs through the executor as a worker's child runs it (claim, heartbeat, deadline,
handler, settle) in this process, against a real database and Redis, with the default settings
(outcomes written every second). Figures:

- recorded items/s: items recorded (checksummed, keyed, bulk-inserted) per second;
- processed items/s: items run and their outcomes written per second;
- overhead per item: the whole run (claim to settle, recording included) less the time spent in
  the items' own function, divided by the items;
- memory: the process's resident size before the job and every 10,000 items while it runs (the
  items are a range, read twice and never held: it must stay flat).

	.venv/bin/python benchmarks/items.py --db sqlite --db mariadb [--items 100000]
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from dataclasses import replace

import sqlalchemy as sa

from dartwing.dartwing_core.background_jobs import admin, job_handler
from dartwing.dartwing_core.background_jobs.backends.sql_url import normalize_url
from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.settings import Settings
from dartwing.dartwing_core.background_jobs.transitions import ITEM

REDIS_URL = os.environ.get("DARTWING_REDIS_URL", "redis://127.0.0.1:6379/0")
MARIADB = normalize_url(os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/"))
TARGET_RECORDED_PER_SECOND = 20_000
TARGET_OVERHEAD_MS = 0.2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
	with open("/proc/self/statm") as statm:
		return int(statm.read().split()[1]) * PAGE_SIZE / 2**20


class Probe:
	"""What the handler saw: when the first item ran, time inside the items, memory samples."""

	def __init__(self) -> None:
		self.started = self.first_item = self.ended = 0.0
		self.in_items = 0.0
		self.memory: list[float] = []


PROBE = Probe()


@job_handler("bench_items", timeout=3600, max_retries=0, deduplication_window=0)
def bench_items(ctx, count: int):
	"""`count` no-op items; the probe notes the time inside them and the memory every 10,000."""
	probe = PROBE
	clock = time.perf_counter

	def noop(n: int) -> None:
		start = clock()
		if not probe.first_item:
			probe.first_item = start
		if n % 10_000 == 0:
			probe.memory.append(rss_mb())
		probe.in_items += clock() - start

	probe.started = clock()
	summary = ctx.each(range(count), noop)
	probe.ended = clock()
	return summary


def database(kind: str, folder: str) -> tuple[str, callable]:
	"""A fresh database of `kind` and the function that drops it."""
	if kind == "sqlite":
		return f"sqlite:///{folder}/items.db", lambda: None
	name = f"dartwing_bench_items_{uuid.uuid4().hex[:8]}"
	server = sa.create_engine(MARIADB, isolation_level="AUTOCOMMIT")
	with server.connect() as conn:
		conn.exec_driver_sql(f"CREATE DATABASE {name}")

	def drop() -> None:
		with server.connect() as conn:
			conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
		server.dispose()

	return sa.engine.make_url(MARIADB).set(database=name).render_as_string(hide_password=False), drop


def run(kind: str, count: int) -> dict:
	global PROBE
	PROBE = Probe()
	with tempfile.TemporaryDirectory() as folder:
		url, drop = database(kind, folder)
		prefix = f"dwbench-items-{uuid.uuid4().hex[:6]}"
		engine = build_engine(url, REDIS_URL, replace(Settings.from_env(), queue_prefix=prefix))
		try:
			engine.store.create_schema()
			admin.sync_job_types(engine)
			admin.add_organization(engine, "Bench")
			job = engine.submit("bench_items", "Bench", {"count": count})
			memory_before = rss_mb()
			started = time.perf_counter()
			status = execute(engine, job["job_id"], engine.get_job(job["job_id"])["queue_job_id"])
			whole = time.perf_counter() - started
			done = engine.status(job["job_id"])
			assert status == "Completed", (status, done["error_message"])
			assert done["items"] == {"total": count, "done": count, "failed": 0, "skipped": 0}, done["items"]
			assert engine.store.count(ITEM, [("status", "=", "Completed")]) == count
			probe = PROBE
			record = probe.first_item - probe.started
			process = probe.ended - probe.first_item
			return {
				"database": kind,
				"items": count,
				"whole run s": whole,
				"record s": record,
				"recorded items/s": count / record,
				"process s": process,
				"processed items/s": count / process,
				"overhead ms/item": (whole - probe.in_items) / count * 1000,
				"memory MB": (memory_before, min(probe.memory), max(probe.memory)),
			}
		finally:
			for queue in engine.queue.queues.values():
				queue.delete(delete_jobs=True)
			engine.store.engine.dispose()
			drop()


def main() -> int:
	parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	parser.add_argument("--db", action="append", choices=("sqlite", "mariadb"))
	parser.add_argument("--items", type=int, default=100_000)
	args = parser.parse_args()
	failed = False
	print(f"{'database':10} {'recorded/s':>11} {'processed/s':>12} {'whole s':>8} {'ms/item':>8}  memory MB")
	for kind in args.db or ["sqlite", "mariadb"]:
		figures = run(kind, args.items)
		before, low, high = figures["memory MB"]
		print(
			f"{kind:10} {figures['recorded items/s']:>11,.0f} {figures['processed items/s']:>12,.0f} "
			f"{figures['whole run s']:>8.2f} {figures['overhead ms/item']:>8.4f}  "
			f"{before:.1f} before, {low:.1f} to {high:.1f} while running"
		)
		failed |= figures["recorded items/s"] < TARGET_RECORDED_PER_SECOND
		failed |= figures["overhead ms/item"] > TARGET_OVERHEAD_MS
	print(
		f"targets: >= {TARGET_RECORDED_PER_SECOND:,} items/s recorded, <= {TARGET_OVERHEAD_MS} ms of engine "
		"overhead per item"
	)
	return 1 if failed else 0


if __name__ == "__main__":
	sys.exit(main())
