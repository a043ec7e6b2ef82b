"""Throughput on a Frappe bench, in one run: N no-op jobs through plain `frappe.enqueue` on the
stock `bench worker`, the same N through the engine on the stock worker, and (with --dartwing-worker)
the same N through the engine on `bench dartwing-worker`, with the same number of worker processes.
For scale, also N plain jobs that read one row (`frappe.client.get_value`): `frappe.ping` never
opens a database connection, and every engine job (two durable transitions) has to.

Run it with the bench's Python from the bench's `sites` folder, on a site with the app installed:

	cd BENCH/sites && ../env/bin/python ../apps/dartwing/benchmarks/frappe_throughput.py \\
		--site SITE --jobs 300 --workers 2 --rounds 3

Each kind's jobs are enqueued first, then W workers drain them (`--burst`). A drain is timed from
the first job's start to the last job's end, as RQ records them on each job (the engine's queue
messages are RQ jobs too), so worker start-up and exit are not throughput. Prints jobs/s per kind
and round, the medians, and each kind's ratio to plain frappe.enqueue (median of the rounds'
ratios, with their range)."""

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import frappe
from frappe.utils.background_jobs import get_queue, get_redis_conn
from rq.job import Job

ORG = "dw-benchmark"
PING = "frappe.ping"
READ_ONE = "frappe.client.get_value"  # as Administrator: one row of User, through Frappe's API


def worker_commands(site: str, kind: str, queue: str, workers: int) -> list[list[str]]:
	"""W stock workers, or one dartwing-worker with W children: the same number of processes
	running jobs."""
	base = [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site]
	if kind == "dartwing-worker":
		return [[*base, "dartwing-worker", "--burst", "--workers", str(workers), "--queue", queue]]
	return [[*base, "worker", "--burst", "--queue", queue]] * workers


def drain(site: str, kind: str, queue: str, workers: int) -> None:
	env = {**os.environ, "PYTHONUNBUFFERED": "1"}
	procs = [
		subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
		for command in worker_commands(site, kind, queue, workers)
	]
	for proc in procs:
		_, stderr = proc.communicate(timeout=1800)
		if proc.returncode:
			raise SystemExit(f"{kind} worker failed ({proc.returncode}):\n{stderr.decode()[-3000:]}")


def makespan(message_ids: list[str]) -> float:
	"""Seconds from the first job's start to the last job's end, as RQ recorded them."""
	jobs = Job.fetch_many(message_ids, connection=get_redis_conn())
	missing = [i for i, job in zip(message_ids, jobs, strict=True) if job is None or job.ended_at is None]
	if missing:
		raise SystemExit(f"{len(missing)} jobs did not finish (e.g. {missing[:3]})")
	return (max(j.ended_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()


def enqueue_pings(n: int, queue: str) -> list[str]:
	ids = [frappe.enqueue(PING, queue=queue).id for _ in range(n)]
	frappe.db.commit()
	return ids


def enqueue_reads(n: int, queue: str) -> list[str]:
	ids = [
		frappe.enqueue(READ_ONE, queue=queue, doctype="User", filters="Administrator", fieldname="enabled").id
		for _ in range(n)
	]
	frappe.db.commit()
	return ids


def submit_noops(n: int) -> list[str]:
	from frappe.utils.background_jobs import create_job_id

	from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine

	engine = get_engine()
	base = int(time.time() * 1000) * 10_000  # a fresh n per job and run: no duplicates
	jobs = [engine.submit("noop", ORG, {"n": base + i}) for i in range(n)]
	frappe.db.commit()
	return [create_job_id(engine.store.get("Background Job", job["job_id"])["queue_job_id"]) for job in jobs]


def run(args) -> None:
	frappe.init(site=args.site)
	frappe.connect()
	from dartwing.dartwing_core.background_jobs.backends.frappe_queue import FrappeQueue

	if not frappe.db.exists("Organization", ORG):
		frappe.get_doc(
			{"doctype": "Organization", "organization_name": ORG, "status": "Active", "max_queued_jobs": 0}
		).insert(ignore_permissions=True)
		frappe.db.commit()
	queue = FrappeQueue().queue_for("Normal")
	kinds: dict[str, tuple[str, Callable[[int], list[str]]]] = {
		"frappe.enqueue, stock worker": ("worker", lambda n: enqueue_pings(n, queue)),
		"frappe.enqueue one read, stock": ("worker", lambda n: enqueue_reads(n, queue)),
		"engine, stock worker": ("worker", submit_noops),
	}
	if args.dartwing_worker:
		kinds["engine, dartwing-worker"] = ("dartwing-worker", submit_noops)
	rates: dict[str, list[float]] = {name: [] for name in kinds}
	print(f"{args.jobs} no-op jobs, {args.workers} workers, queue {queue}, {args.rounds} rounds")
	for round_no in range(1, args.rounds + 1):
		for name, (worker_kind, produce) in kinds.items():
			if get_queue(queue).count:
				raise SystemExit(f"queue {queue} is not empty: stop other workers and retry")
			ids = produce(args.jobs)
			drain(args.site, worker_kind, queue, args.workers)
			rate = args.jobs / makespan(ids)
			rates[name].append(rate)
			print(f"round {round_no}: {name:32s} {rate:8.1f} jobs/s", flush=True)
		_purge_benchmark_jobs()
	baseline = rates["frappe.enqueue, stock worker"]
	print("\nmedian jobs/s, and ratio to frappe.enqueue on the stock worker (median [range] of rounds)")
	for name, values in rates.items():
		ratios = [v / b for v, b in zip(values, baseline, strict=True)]
		print(
			f"{name:32s} {statistics.median(values):8.1f}  "
			f"x{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"
		)


def _purge_benchmark_jobs() -> None:
	"""The benchmark's job rows and their logs, so rounds and runs do not grow the tables."""
	jobs = frappe.get_all("Background Job", filters={"organization": ORG}, pluck="name")
	for start in range(0, len(jobs), 500):
		batch = jobs[start : start + 500]
		frappe.db.delete("Job Execution Log", {"background_job": ["in", batch]})
		frappe.db.delete("Background Job", {"name": ["in", batch]})
	frappe.db.commit()


if __name__ == "__main__":
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--site", required=True)
	parser.add_argument("--jobs", type=int, default=300)
	parser.add_argument("--workers", type=int, default=2)
	parser.add_argument("--rounds", type=int, default=3)
	parser.add_argument(
		"--dartwing-worker", action="store_true", help="Also time the engine on `bench dartwing-worker`."
	)
	started = time.monotonic()
	run(parser.parse_args())
	print(f"\n({time.monotonic() - started:.0f} s)")
