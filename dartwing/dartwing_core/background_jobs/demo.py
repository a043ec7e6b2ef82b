"""`make demo`: every kind of job end to end on real workers, a real scheduler and real Redis,
in a throw-away SQLite database and queue namespace, ending with a summary; then resumable jobs:
a worker killed in the middle of an import's items, and an import paused and resumed."""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from . import admin, schedules, states
from .audit import verify_chain
from .transitions import ITEM, JOB, LOG

if TYPE_CHECKING:
	from .engine import Engine

console = Console()

# (label, job type, parameters, priority, expected final status, what it shows)
PLAN = [
	(
		"report",
		"sample_job",
		{"steps": 20, "delay": 0.15, "label": "report"},
		"Normal",
		states.COMPLETED,
		"succeeds with progress",
	),
	(
		"flaky",
		"flaky_job",
		{"failures": 2},
		"High",
		states.COMPLETED,
		"fails transiently twice, then succeeds",
	),
	("broken", "broken_job", {}, "Normal", states.DEAD_LETTER, "fails permanently: straight to Dead Letter"),
	(
		"slow",
		"slow_job",
		{"seconds": 30},
		"Low",
		states.DEAD_LETTER,
		"times out, retried once, dead-lettered",
	),
	("long", "long_job", {"steps": 300}, "High", states.CANCELED, "canceled while running"),
	(
		"parent",
		"sample_job",
		{"steps": 10, "delay": 0.2, "label": "parent"},
		"Critical",
		states.COMPLETED,
		"a parent job",
	),
	(
		"child",
		"sample_job",
		{"steps": 5, "delay": 0.1, "label": "child"},
		"Normal",
		states.COMPLETED,
		"waits for its parent",
	),
]


def run_demo(ctx, worker_count: int = 2) -> int:
	workdir = Path(tempfile.mkdtemp(prefix="dartwing-demo-"))
	env = {
		**os.environ,
		"DARTWING_DB_URL": f"sqlite:///{workdir / 'demo.db'}",
		"DARTWING_QUEUE_PREFIX": f"dartwing-demo-{os.getpid()}",
		"DARTWING_LEASE_SECONDS": "6",
		"DARTWING_CANCEL_GRACE_SECONDS": "3",
		"DARTWING_REQUEUE_GRACE_SECONDS": "5",
		"DARTWING_SCHEDULER_INTERVAL": "0.5",
		"DARTWING_LOG_LEVEL": "WARNING",
	}
	if ctx.redis:
		env["DARTWING_REDIS_URL"] = ctx.redis
	os.environ.update(env)
	ctx.db = env["DARTWING_DB_URL"]
	engine = ctx.engine
	engine.store.create_schema()
	admin.sync_job_types(engine)
	admin.add_organization(engine, "Acme Corp")
	console.rule("[bold]Dartwing job engine demo")
	console.print(f"database {env['DARTWING_DB_URL']}\nqueues   {env['DARTWING_QUEUE_PREFIX']}-*\n")

	command = [sys.executable, "-m", "dartwing.dartwing_core.background_jobs"]
	log = open(workdir / "processes.log", "w")

	def start_workers() -> subprocess.Popen:
		# A process group of its own: the demo kills it, workers and children, as a crash would.
		worker = [*command, "worker", "-n", str(worker_count)]
		return subprocess.Popen(worker, env=env, stdout=log, stderr=log, start_new_session=True)

	processes = [start_workers(), subprocess.Popen([*command, "scheduler"], env=env, stdout=log, stderr=log)]
	try:
		jobs = _submit_plan(engine)
		canceler = threading.Thread(target=_cancel_when_running, args=(engine, jobs["long"]), daemon=True)
		canceler.start()
		recurring = schedules.add(engine, RECURRING, user="demo")["name"]
		pauser = threading.Thread(target=_pause_after, args=(engine, recurring, RECURRING_RUNS), daemon=True)
		pauser.start()
		from .watch import watch_jobs

		watch_jobs(engine, organization="Acme Corp", timeout=120)
		canceler.join()
		pauser.join()
		ok = _summary(engine, jobs, recurring) == 0
		console.rule("[bold]Resumable jobs")
		ok &= _crash_mid_items(engine, processes, start_workers, workdir)
		ok &= _pause_and_resume(engine, workdir)
		console.print(
			"[bold green]Resumable jobs finished as expected."
			if ok
			else "[bold red]Demo: some jobs did not end as expected."
		)
		return 0 if ok else 1
	finally:
		for process in processes:
			process.send_signal(signal.SIGTERM)
		for process in processes:
			try:
				process.wait(timeout=10)
			except subprocess.TimeoutExpired:
				process.kill()
		for queue in engine.queue.queues.values():
			queue.delete(delete_jobs=True)
		log.close()
		console.print(f"\nworker and scheduler output: {workdir / 'processes.log'}")


# A Job Schedule every 2 s, paused by the demo after RECURRING_RUNS jobs.
RECURRING = {
	"job_type": "sample_job",
	"organization": "Acme Corp",
	"parameters": {"steps": 4, "delay": 0.05, "label": "recurring"},
	"interval_seconds": 2,
}
RECURRING_RUNS = 3
LATER_SECONDS = 4


def _pause_after(engine: "Engine", schedule: str, runs: int, deadline: float = 60) -> None:
	stop_at = time.monotonic() + deadline
	while time.monotonic() < stop_at and len(schedules.jobs_of(engine, schedule)) < runs:
		time.sleep(0.2)
	schedules.set_enabled(engine, schedule, False, user="demo")


def _wait(engine: "Engine", job_id: str, until, what: str, timeout: float = 90) -> dict:
	stop_at = time.monotonic() + timeout
	while time.monotonic() < stop_at:
		job = engine.get_job(job_id)
		if until(job):
			return job
		time.sleep(0.1)
	raise RuntimeError(f"demo: timed out waiting for {what} (job {job_id} is {job['status']})")


def _import(engine: "Engine", workdir: Path, label: str, rows: int) -> tuple[str, Path]:
	ledger = workdir / label
	ledger.mkdir()
	params = {"rows": rows, "delay": 0.03, "ledger": str(ledger)}
	job = engine.submit("import_rows", "Acme Corp", params, user="demo", triggered_by="demo")
	return job["job_id"], ledger


def _crash_mid_items(engine: "Engine", processes: list, start_workers, workdir: Path) -> bool:
	"""An import whose worker is killed (SIGKILL, the whole process group) in the middle of its
	items: the scheduler rescues it once its lease lapses, a new worker resumes it, and every
	item ends done once; only the batch not yet saved at the kill runs again."""
	rows = 150
	job_id, ledger = _import(engine, workdir, "crash-ledger", rows)
	console.print(f"import {job_id}: {rows} rows of 30 ms, worker killed after 50 are saved")
	_wait(engine, job_id, lambda j: (j["items_done"] or 0) >= 50, "50 items to be saved")
	os.killpg(processes[0].pid, signal.SIGKILL)
	processes[0].wait()
	saved = engine.get_job(job_id)["items_done"]
	console.print(f"  killed: {saved} items saved, the job still says Running; a new worker starts")
	processes[0] = start_workers()
	job = _wait(engine, job_id, lambda j: j["status"] in states.TERMINAL, "the import to finish")
	items = engine.store.count_by(ITEM, "status", [("background_job", "=", job_id)])
	again = engine.store.count(ITEM, [("background_job", "=", job_id), ("attempt", "=", 2)])
	files = len(list(ledger.iterdir()))
	ok = job["status"] == states.COMPLETED and items == {"Completed": rows} and files == rows
	console.print(
		f"  {job['status']}: items {items}, {files} rows in the ledger (one per item key); "
		f"attempt 2 ran {again} items: the {rows - saved} not saved at the kill, and no others"
	)
	return ok and again == rows - saved


def _pause_and_resume(engine: "Engine", workdir: Path) -> bool:
	"""An import paused while it runs (it stops at its next item, without using an attempt), left
	paused for a second, then resumed: it continues with the items it had not run."""
	rows = 100
	job_id, _ = _import(engine, workdir, "pause-ledger", rows)
	_wait(engine, job_id, lambda j: (j["items_done"] or 0) >= 20, "20 items to be saved")
	engine.pause(job_id, user="demo")
	job = _wait(engine, job_id, lambda j: j["status"] == states.PAUSED, "the import to pause")
	done_at_pause = job["items_done"]
	time.sleep(1)
	still = engine.get_job(job_id)["items_done"]
	console.print(
		f"import {job_id}: paused by demo after {done_at_pause} of {rows} items ({still} a second later)"
	)
	engine.resume(job_id, user="demo")
	job = _wait(engine, job_id, lambda j: j["status"] in states.TERMINAL, "the resumed import to finish")
	twice = engine.store.count(ITEM, [("background_job", "=", job_id), ("attempt", "!=", 1)])
	history = [
		e["to_status"] for e in engine.history(job_id)["entries"] if e["from_status"] != e["to_status"]
	]
	console.print(
		f"  resumed: {job['status']}, {job['items_done']} items done, retries used {job['retry_count']}, "
		f"items run twice {twice}; statuses {' -> '.join(history)}"
	)
	return (
		job["status"] == states.COMPLETED
		and job["items_done"] == rows
		and job["retry_count"] == 0
		and twice == 0
		and still == done_at_pause
	)


def _cancel_when_running(engine: "Engine", job_id: str, deadline: float = 60) -> None:
	"""Cancel the long job once it is visibly under way, as a user watching it would."""
	stop_at = time.monotonic() + deadline
	while time.monotonic() < stop_at:
		job = engine.get_job(job_id)
		if job["status"] == states.RUNNING and job["progress"] >= 5:
			engine.cancel(job_id, user="demo")
			return
		if job["status"] in states.TERMINAL:
			return
		time.sleep(0.2)


def _submit_plan(engine: "Engine") -> dict[str, str]:
	jobs = {}
	for label, job_type, params, priority, _expected, _what in PLAN:
		depends_on = jobs["parent"] if label == "child" else None
		job = engine.submit(
			job_type, "Acme Corp", params, priority, depends_on, user="demo", triggered_by="demo"
		)
		jobs[label] = job["job_id"]
	later = engine.submit(
		"sample_job",
		"Acme Corp",
		{"steps": 5, "delay": 0.1, "label": "later"},
		user="demo",
		triggered_by="demo",
		delay=LATER_SECONDS,
	)
	jobs["later"] = later["job_id"]
	return jobs


def _summary(engine: "Engine", jobs: dict[str, str], recurring: str) -> int:
	table = Table("job", "what it shows", "final status", "tries", "result or error", "audit")
	ok = True
	for label, job_type, _params, _priority, expected, what in PLAN:
		job = engine.get_job(jobs[label])
		logs = engine.store.get_all(LOG, [("background_job", "=", job["name"])], order_by="sequence asc")
		chain = verify_chain(job["chain_head"], logs)
		attempts = sum(
			1
			for entry in logs
			if entry["to_status"] == states.RUNNING and entry["from_status"] == states.QUEUED
		)
		good = job["status"] == expected and chain.ok
		ok &= good
		detail = job["output_reference"] or job["error_message"] or ""
		if job["status"] == states.CANCELED:
			detail = f"canceled by {job['canceled_by']} at {job['progress']:.0f}%"
		table.add_row(
			f"{label} ({job_type})",
			what,
			f"[{'green' if good else 'red'}]{job['status']}",
			str(attempts),
			detail[:60],
			"intact" if chain.ok else "BROKEN",
		)
	later = engine.get_job(jobs["later"])
	waited = (later["started_at"] - later["creation"]).total_seconds() if later["started_at"] else 0
	good = later["status"] == states.COMPLETED and waited >= LATER_SECONDS
	ok &= good
	table.add_row(
		"later (sample_job)",
		f"Scheduled {LATER_SECONDS} s, then queued by the scheduler",
		f"[{'green' if good else 'red'}]{later['status']}",
		"1",
		f"started {waited:.1f} s after submit",
		"",
	)
	runs = schedules.jobs_of(engine, recurring)
	good = len(runs) >= RECURRING_RUNS and all(job["status"] == states.COMPLETED for job in runs)
	ok &= good
	table.add_row(
		"recurring (sample_job)",
		"a Job Schedule every 2 s, paused after 3 runs",
		f"[{'green' if good else 'red'}]{len(runs)} jobs " + ", ".join(sorted({j["status"] for j in runs})),
		"",
		"one job per due time (unique schedule_key)",
		"",
	)
	child, parent = engine.get_job(jobs["child"]), engine.get_job(jobs["parent"])
	ordered = bool(
		child["started_at"] and parent["completed_at"] and child["started_at"] >= parent["completed_at"]
	)
	ok &= ordered
	console.print(table)
	console.print(f"child started after its parent completed: {'yes' if ordered else 'NO'}")
	counts = engine.store.count_by(JOB, "status")
	console.print("jobs by status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
	console.print(
		"[bold green]Demo finished: every job ended as expected."
		if ok
		else "[bold red]Demo: some jobs did not end as expected."
	)
	return 0 if ok else 1
