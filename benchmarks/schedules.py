"""10,000 Job Schedules due in the same minute: how long the scheduler tick that turns them into jobs takes.

Creates a fresh database (MariaDB by default), 100 organizations and N schedules (default
10,000) whose next run is the same minute: a mix of cron expressions in several time zones and
intervals. Then, with the engine's clock 5 s past that minute, times one `scheduler.tick` (every
periodic task, run_schedules among them), checks that it created exactly one job per schedule
(distinct schedule_key) and sent one queue message each, and times the next tick (nothing due).
The target: the whole turn within one tick of at most 10 s. The database is dropped at the end.

	.venv/bin/python benchmarks/schedules.py --db mariadb
	.venv/bin/python benchmarks/schedules.py --db mariadb,postgresql --schedules 10000 --runs 3
"""

import argparse
import json
import os
import statistics
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from million import REDIS_URL, database

from dartwing.dartwing_core.background_jobs import admin, scheduler, schedules
from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.registry import import_handler_modules
from dartwing.dartwing_core.background_jobs.settings import Settings
from dartwing.dartwing_core.background_jobs.transitions import JOB

import_handler_modules(["dartwing.dartwing_core.background_jobs.samples"])
TARGET_SECONDS = 10
# Every one of these names the minute DUE (10:00 of a Monday), in its own zone.
KINDS = (
	{"cron": "* * * * *", "time_zone": "UTC"},
	{"cron": "*/5 * * * *", "time_zone": "Europe/Paris"},
	{"cron": "0 * * * *", "time_zone": "America/New_York"},
	{"cron": "0 10 * * 1-5", "time_zone": "UTC"},
	{"cron": "*/15 * * * *", "time_zone": "Asia/Kolkata"},
	{"interval_seconds": 300, "time_zone": "UTC"},
)
DUE = datetime(2026, 12, 7, 10, 0)  # naive UTC, as the standalone store keeps times


def fill(engine, count: int, orgs: int) -> None:
	"""`count` schedules, all next due at DUE: each checked once per kind by the engine's own
	rules (schedules.prepare), then written in bulk."""
	for i in range(orgs):
		admin.add_organization(engine, f"Org {i:03d}", max_queued_jobs=0)
	templates = []
	for kind in KINDS:
		values = {"job_type": "sample_job", "organization": "Org 000", "parameters": {}, **kind}
		templates.append(schedules.prepare(engine, values, user="Administrator", roles=None))
	rows = []
	for i in range(count):
		row = dict(templates[i % len(templates)])
		anchor = DUE - timedelta(seconds=300 * 12)  # intervals: due at DUE as well
		row.update(
			name=uuid.uuid4().hex[:16],
			organization=f"Org {i % orgs:03d}",
			parameters=json.dumps({"label": f"schedule {i}"}),
			overlap_policy="Allow",
			next_run_at=DUE,
			creation=anchor,
			modified=anchor,
			owner="Administrator",
			owner_user="Administrator",
		)
		rows.append(row)
	table = engine.store.tables[schedules.SCHEDULE]
	with engine.store.engine.begin() as conn:
		for i in range(0, len(rows), 1000):
			conn.execute(table.insert(), rows[i : i + 1000])


def run(kind: str, count: int, orgs: int) -> tuple[float, float, dict]:
	with database(kind) as url:
		settings = replace(
			Settings.from_env(), queue_prefix=f"dwsched-{uuid.uuid4().hex[:6]}", scheduler_interval=60
		)
		engine = build_engine(url, REDIS_URL, settings)
		try:
			engine.store.create_schema()
			admin.sync_job_types(engine)
			fill(engine, count, orgs)
			engine.now = lambda: DUE + timedelta(seconds=5)
			started = time.perf_counter()
			report = scheduler.tick(engine)
			seconds = time.perf_counter() - started
			started = time.perf_counter()
			idle = scheduler.tick(engine)
			idle_seconds = time.perf_counter() - started
			keys = engine.store.count_by(JOB, "schedule_key", [("schedule", "is", "set")])
			assert report["run_schedules"] == count, report
			assert len(keys) == count and set(keys.values()) == {1}, "one job per schedule and due time"
			assert sum(engine.queue.depth().values()) == count, "one message per job"
			assert idle["run_schedules"] == 0, idle
			assert engine.store.count(schedules.SCHEDULE, [("next_run_at", "<=", DUE)]) == 0
			return seconds, idle_seconds, report
		finally:
			for queue in engine.queue.queues.values():
				queue.delete(delete_jobs=True)
			for key in engine.lock_client.scan_iter(f"{settings.queue_prefix}:*"):
				engine.lock_client.delete(key)
			engine.store.engine.dispose()


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	parser.add_argument("--db", default="mariadb", help="mariadb, postgresql, or both comma-separated")
	parser.add_argument("--schedules", type=int, default=10_000)
	parser.add_argument("--orgs", type=int, default=100)
	parser.add_argument("--runs", type=int, default=1, help="fresh databases per kind; the median is shown")
	args = parser.parse_args()
	print(f"{args.schedules} schedules due in one minute, {args.orgs} organizations, pid {os.getpid()}")
	for kind in args.db.split(","):
		ticks, idles = [], []
		for _ in range(args.runs):
			seconds, idle, report = run(kind.strip(), args.schedules, args.orgs)
			ticks.append(seconds)
			idles.append(idle)
			print(
				f"  {kind}: tick {seconds:.2f} s (run_schedules created {report['run_schedules']}), next tick {idle * 1000:.0f} ms",
				flush=True,
			)
		median = statistics.median(ticks)
		print(
			f"{kind}: median tick {median:.2f} s over {len(ticks)} run(s), target <= {TARGET_SECONDS} s: "
			f"{'met' if median <= TARGET_SECONDS else 'NOT met'}; idle tick median {statistics.median(idles) * 1000:.0f} ms"
		)


if __name__ == "__main__":
	main()
