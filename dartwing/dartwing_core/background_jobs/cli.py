"""`dartwing-jobs`: the standalone command line. Every command takes --json and prints one JSON
document; exit codes: 0 ok, 2 bad input, 3 duplicate, 4 not found, 5 not allowed now; `submit --wait`
1 when the job ended Dead Letter or Canceled, 124 when it had not ended by --timeout."""

import functools
import json
import sys
from datetime import datetime, timezone

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from . import admin, cleanup, dead_letter, logs, metrics, runtime, scheduler, schedules, states
from .errors import DartwingError, DuplicateJob, JobFailed, ValidationError
from .registry import env_imports, import_handler_modules
from .serialize import schedule_to_api
from .timing import parse_duration
from .waiting import check_timeout

SAMPLES = "dartwing.dartwing_core.background_jobs.samples"
console = Console()
EXIT_COMPLETED = 0
EXIT_WAIT_TIMED_OUT = 124  # submit --wait: the job had not ended by --timeout (as timeout(1) exits)
# Errors stay on one line whatever the terminal (or pipe) width: scripts grep them.
err_console = Console(stderr=True, soft_wrap=True)


class Context:
	def __init__(self, db: str | None, redis: str | None, imports: tuple[str, ...], as_json: bool):
		self.db, self.redis, self.imports, self.as_json = db, redis, imports, as_json
		self._engine = None

	@property
	def engine(self):
		if self._engine is None:
			from .backends.standalone import build_engine

			import_handler_modules([SAMPLES, *env_imports(), *self.imports])
			self._engine = build_engine(self.db, self.redis)
			runtime.configure(self._engine)
		return self._engine

	def emit(self, document, render=None) -> None:
		if self.as_json:
			click.echo(json.dumps(document, indent=2, default=str))
		elif render:
			render(document)
		else:
			console.print_json(data=document, default=str)


def command(group, name=None, **kwargs):
	"""A subcommand with the shared options, the Context, and DartwingError mapped to exit codes."""

	def decorate(func):
		@group.command(name, **kwargs)
		@click.option("--db", envvar="DARTWING_DB_URL", help="Database URL (default: a SQLite file).")
		@click.option(
			"--redis", envvar="DARTWING_REDIS_URL", help="Redis URL (default: redis://127.0.0.1:6379/0)."
		)
		@click.option("--import", "imports", multiple=True, help="Module declaring handlers (repeatable).")
		@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
		@functools.wraps(func)
		def wrapper(db, redis, imports, as_json, **params):
			ctx = Context(db, redis, imports, as_json)
			try:
				return func(ctx, **params)
			except DartwingError as exc:
				document = {"error": type(exc).__name__, "message": str(exc)}
				if isinstance(exc, ValidationError):
					document["field"] = exc.field
				if isinstance(exc, DuplicateJob):
					document.update(existing_job=exc.existing_job, existing_status=exc.existing_status)
				if as_json:
					click.echo(json.dumps(document, indent=2))
				err_console.print(f"[red]error:[/red] {exc}", highlight=False)
				sys.exit(exc.exit_code)

		return wrapper

	return decorate


class IsoDateTime(click.ParamType):
	"""ISO 8601 as the CLI prints it (2024-05-01, 2024-05-01T12:00:00.5+02:00, ...Z); naive means UTC."""

	name = "iso8601"

	def convert(self, value, param, ctx):
		if isinstance(value, datetime):
			return value
		try:
			return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
		except ValueError:
			self.fail(f"{value!r} is not an ISO 8601 date or date-time", param, ctx)


def _utc(value: datetime | None) -> datetime | None:
	if value is None or value.tzinfo is None:
		return value
	return value.astimezone(timezone.utc).replace(tzinfo=None)


@click.group(help=__doc__)
@click.version_option(package_name="dartwing")
def cli():
	try:
		logs.configure()
	except ValidationError as exc:
		err_console.print(f"[red]error:[/red] {exc}", highlight=False)
		sys.exit(exc.exit_code)


@command(cli)
def init(ctx):
	"""Create the tables and a Job Type for every declared handler that has none."""
	ctx.engine.store.create_schema()
	created = admin.sync_job_types(ctx.engine)
	ctx.emit(
		{"job_types_created": created, "job_types": sorted(ctx.engine.handlers.specs)},
		lambda d: console.print(f"Schema ready; job types created: {', '.join(created) or 'none'}"),
	)


@cli.group()
def org():
	"""Organizations (tenants)."""


@command(org, "add")
@click.argument("name")
@click.option(
	"--max-queued", type=int, default=1000, show_default=True, help="Unfinished jobs allowed; 0: no limit."
)
@click.option(
	"--max-in-flight",
	type=int,
	default=0,
	show_default=True,
	help="Jobs queued or running at once; more wait as Pending (fairness). 0: no limit.",
)
def org_add(ctx, name, max_queued, max_in_flight):
	ctx.emit(_org_api(admin.add_organization(ctx.engine, name, max_queued, max_in_flight)))


@command(org, "suspend")
@click.argument("name")
def org_suspend(ctx, name):
	ctx.emit(_org_api(admin.set_organization_status(ctx.engine, name, "Suspended")))


@command(org, "resume")
@click.argument("name")
def org_resume(ctx, name):
	ctx.emit(_org_api(admin.set_organization_status(ctx.engine, name, "Active")))


def _org_api(row: dict) -> dict:
	return {
		"organization": row["name"],
		"status": row["status"],
		"max_queued_jobs": row["max_queued_jobs"],
		"max_in_flight_jobs": row.get("max_in_flight_jobs") or 0,
	}


@command(cli)
@click.argument("job_type")
@click.option("--org", "organization", required=True, help="Organization the job belongs to.")
@click.option("--params", default=None, help="Parameters as a JSON object.")
@click.option("--priority", default=None, help="Low, Normal, High or Critical (default: the job type's).")
@click.option("--depends-on", default=None, help="Job that must complete first.")
@click.option("--user", default="Administrator", show_default=True)
@click.option("--at", "run_at", default=None, help="Run at this time: ISO 8601 with offset (…Z, …+02:00).")
@click.option("--in", "delay", default=None, help="Run after this long: seconds, or 90s, 10m, 1h30m, 2d.")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the job to end; exit 0 only if it completed.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
def submit(ctx, job_type, organization, params, priority, depends_on, user, run_at, delay, wait_, timeout):
	"""Submit a job; prints it at once, or with --wait once it has ended. With --at or --in it
	stays Scheduled until then (a running `scheduler` queues it).

	With --wait the exit code says how it ended: 0 Completed, 1 Dead Letter or Canceled,
	124 still unfinished when --timeout passed (as timeout(1)); the job is printed in each case."""
	if timeout is not None and not wait_:
		raise ValidationError("timeout", "only applies with --wait")
	if wait_:
		check_timeout(timeout)  # before anything is submitted
	job = ctx.engine.submit(
		job_type,
		organization,
		params,
		priority,
		depends_on,
		user,
		triggered_by="cli",
		run_at=run_at,
		delay=delay,
	)
	if not wait_:
		ctx.emit(job, _render_job)
		return
	try:
		ctx.engine.wait(job["job_id"], timeout)
		code = EXIT_COMPLETED
	except JobFailed as exc:
		err_console.print(f"[red]error:[/red] {exc}", highlight=False)
		code = exc.exit_code
	except TimeoutError as exc:
		err_console.print(f"[red]error:[/red] {exc}", highlight=False)
		code = EXIT_WAIT_TIMED_OUT
	ctx.emit(ctx.engine.status(job["job_id"]), _render_job)
	sys.exit(code)


@cli.group()
def schedule():
	"""Recurring jobs: a cron expression in a time zone, or an interval."""


@command(schedule, "add")
@click.argument("job_type")
@click.option("--org", "organization", required=True, help="Organization the jobs belong to.")
@click.option("--params", default=None, help="Parameters as a JSON object, for every job.")
@click.option("--cron", default=None, help='5 fields: minute hour day month weekday, e.g. "0 6 * * 1-5".')
@click.option("--every", default=None, help="Instead of --cron: an interval (seconds, or 90s, 10m, 1h, 2d).")
@click.option("--tz", "time_zone", default="UTC", show_default=True, help="IANA time zone of the cron times.")
@click.option("--overlap", type=click.Choice(["skip", "allow"]), default="skip", show_default=True)
@click.option("--misfire", type=click.Choice(["run-once", "skip"]), default="run-once", show_default=True)
@click.option("--paused", is_flag=True, help="Create it disabled.")
@click.option("--user", default="Administrator", show_default=True, help="Its jobs run as this user.")
def schedule_add(ctx, job_type, organization, params, cron, every, time_zone, overlap, misfire, paused, user):
	"""Create a schedule; prints it with its next five run times."""
	values = {
		"job_type": job_type,
		"organization": organization,
		"parameters": params,
		"cron": cron,
		"interval_seconds": None if every is None else _whole_seconds(every),
		"time_zone": time_zone,
		"enabled": 0 if paused else 1,
		"overlap_policy": overlap.capitalize(),
		"misfire_policy": "Run Once" if misfire == "run-once" else "Skip",
	}
	ctx.emit(_schedule_api(ctx, schedules.add(ctx.engine, values, user=user)), _render_job)


def _whole_seconds(every: str) -> int | float:
	seconds = parse_duration("interval_seconds", every)
	return int(seconds) if seconds.is_integer() else seconds


@command(schedule, "list")
@click.option("--org", "organization")
def schedule_list(ctx, organization):
	rows = schedules.list_schedules(ctx.engine, organization)
	ctx.emit({"schedules": [schedule_to_api(r, ctx.engine.tz) for r in rows]}, _render_schedules)


@command(schedule, "show")
@click.argument("schedule_id")
def schedule_show(ctx, schedule_id):
	"""The schedule, its next five run times and its latest jobs."""
	document = _schedule_api(ctx, schedules.get(ctx.engine, schedule_id))
	document["jobs"] = [ctx.engine.to_api(j) for j in schedules.jobs_of(ctx.engine, schedule_id)]
	ctx.emit(document)


@command(schedule, "pause")
@click.argument("schedule_id")
def schedule_pause(ctx, schedule_id):
	ctx.emit(_schedule_api(ctx, schedules.set_enabled(ctx.engine, schedule_id, False)), _render_job)


@command(schedule, "resume")
@click.argument("schedule_id")
def schedule_resume(ctx, schedule_id):
	"""Enable again; runs due while it was paused are not made up."""
	ctx.emit(_schedule_api(ctx, schedules.set_enabled(ctx.engine, schedule_id, True)), _render_job)


@command(schedule, "delete")
@click.argument("schedule_id")
def schedule_delete(ctx, schedule_id):
	"""Delete the schedule; the jobs it created stay."""
	schedules.delete(ctx.engine, schedule_id)
	ctx.emit({"deleted": schedule_id})


@command(schedule, "run-now")
@click.argument("schedule_id")
@click.option("--user", default="Administrator", show_default=True)
def schedule_run_now(ctx, schedule_id, user):
	"""Create one job of the schedule now (its next run time does not change)."""
	ctx.emit(schedules.run_now(ctx.engine, schedule_id, user=user), _render_job)


def _schedule_api(ctx, row: dict) -> dict:
	return schedule_to_api(row, ctx.engine.tz, schedules.upcoming(ctx.engine, row))


def _render_schedules(document: dict) -> None:
	table = Table(
		Column("schedule_id", no_wrap=True), "job_type", "organization", "when", "enabled", "next run"
	)
	for s in document["schedules"]:
		when = s["cron"] or f"every {s['interval_seconds']} s"
		table.add_row(
			s["schedule_id"],
			s["job_type"],
			s["organization"],
			f"{when} ({s['time_zone']})",
			"yes" if s["enabled"] else "paused",
			(s["next_run_at"] or "")[:19].replace("T", " "),
		)
	console.print(table)


@command(cli)
@click.argument("job_id")
def status(ctx, job_id):
	ctx.emit(ctx.engine.status(job_id), _render_job)


@command(cli, "list")
@click.option("--org", "organization")
@click.option("--status", "status_")
@click.option("--type", "job_type")
@click.option("--since", type=IsoDateTime(), help="Created at or after (ISO 8601).")
@click.option("--until", type=IsoDateTime(), help="Created before (ISO 8601).")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--offset", type=int, default=0)
def list_(ctx, organization, status_, job_type, since, until, limit, offset):
	page = ctx.engine.list_jobs(organization, status_, job_type, _utc(since), _utc(until), limit, offset)
	ctx.emit(page, _render_list)


@command(cli)
@click.argument("job_id")
def history(ctx, job_id):
	ctx.emit(ctx.engine.history(job_id), _render_history)


@command(cli)
@click.argument("job_id")
@click.option("--user", default="Administrator", show_default=True)
def cancel(ctx, job_id, user):
	ctx.emit(ctx.engine.cancel(job_id, user), _render_job)


@command(cli)
@click.argument("job_id")
@click.option("--user", default="Administrator", show_default=True)
def pause(ctx, job_id, user):
	"""Pause a waiting job at once, a running one at its next checkpoint."""
	ctx.emit(ctx.engine.pause(job_id, user), _render_job)


@command(cli)
@click.argument("job_id")
@click.option("--user", default="Administrator", show_default=True)
def resume(ctx, job_id, user):
	"""Queue a Paused job again; it continues from its saved steps and items."""
	ctx.emit(ctx.engine.resume(job_id, user), _render_job)


@command(cli)
@click.argument("job_id")
@click.option("--user", default="Administrator", show_default=True)
@click.option("--failed-items", is_flag=True, help="Run only its failed items (refused when none failed).")
def retry(ctx, job_id, user, failed_items):
	"""Queue a Failed, Timed Out or Dead Letter job again now, with a fresh retry budget; it
	resumes from its saved steps and items."""
	ctx.emit(ctx.engine.retry(job_id, user, failed_items_only=failed_items), _render_job)


@command(cli)
@click.argument("job_id")
@click.option("--status", "status_", help="Pending, Completed, Failed or Skipped.")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--offset", type=int, default=0)
def items(ctx, job_id, status_, limit, offset):
	"""A job's items (ctx.each) in list order, with their outcomes."""
	ctx.emit(ctx.engine.job_items(job_id, status_, limit, offset), _render_items)


@cli.group("job-type")
def job_type_group():
	"""Pause or resume a job type."""


@command(job_type_group, "pause")
@click.argument("name")
@click.option("--user", default="Administrator", show_default=True)
def job_type_pause(ctx, name, user):
	"""Its queued jobs wait and its running ones pause at their next checkpoint; submits are taken."""
	ctx.emit(ctx.engine.pause_job_type(name, True, user))


@command(job_type_group, "resume")
@click.argument("name")
@click.option("--user", default="Administrator", show_default=True)
def job_type_resume(ctx, name, user):
	"""Send its queued jobs again and resume the jobs its pause stopped."""
	ctx.emit(ctx.engine.pause_job_type(name, False, user))


@command(cli, "dead-letters")
@click.option("--org", "organization")
@click.option("--limit", type=int, default=100, show_default=True)
def dead_letters(ctx, organization, limit):
	jobs = dead_letter.list_dead_letters(ctx.engine, organization, limit)
	ctx.emit({"jobs": jobs, "total": len(jobs)}, _render_list)


@command(cli)
@click.option(
	"--older-than", type=float, default=None, help="Days (default: DARTWING_PURGE_AFTER_DAYS or 30)."
)
def purge(ctx, older_than):
	"""Delete finished jobs and their logs older than the retention period."""
	ctx.emit({"purged": cleanup.purge(ctx.engine, older_than)})


@command(cli, "metrics")
@click.option("--org", "organization")
@click.option("--prometheus", is_flag=True, help="Prometheus text exposition format.")
@click.option("--window-hours", type=click.FloatRange(min=0, min_open=True), default=24, show_default=True)
def metrics_(ctx, organization, prometheus, window_hours):
	data = metrics.collect(ctx.engine, organization, window_hours=window_hours)
	if prometheus and not ctx.as_json:
		click.echo(metrics.to_prometheus(data), nl=False)
	else:
		ctx.emit(data, _render_metrics)


@command(cli)
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option("-n", "--workers", "count", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
	"--fork-per-job",
	is_flag=True,
	envvar="DARTWING_FORK_PER_JOB",
	help="Fork a work-horse per job (a clean process each), instead of long-lived children.",
)
@click.option(
	"--max-jobs-per-child",
	type=click.IntRange(0),
	default=0,
	help="Replace a child after this many jobs (0: never).",
)
@click.option(
	"--max-memory-per-child",
	type=click.IntRange(0),
	default=0,
	help="Replace a child once a job leaves it above this many MB resident (0: never).",
)
def worker(ctx, burst, count, fork_per_job, max_jobs_per_child, max_memory_per_child):
	"""Run workers draining the Critical, High, Normal and Low queues in that order.

	Each worker is a long-lived child process that runs many jobs, replaced when it dies, passes
	a job's deadline or is due (--max-jobs-per-child, --max-memory-per-child)."""
	from .worker import run_workers

	if fork_per_job and (max_jobs_per_child or max_memory_per_child):
		raise click.UsageError(
			"--max-jobs-per-child and --max-memory-per-child need long-lived children, not --fork-per-job"
		)
	failed = run_workers(ctx.engine, count, burst, fork_per_job, max_jobs_per_child, max_memory_per_child)
	if ctx.as_json:
		click.echo(json.dumps({"workers": count, "failed": failed}))
	sys.exit(1 if failed else 0)


@command(cli, "scheduler")
@click.option("--once", is_flag=True, help="Run every periodic task once and exit.")
@click.option("--interval", type=float, default=None, help="Seconds between passes (default 1).")
def scheduler_(ctx, once, interval):
	"""Retries, dependency release, orphan rescue, lost-message redispatch, cancel hard stops, cleanup."""
	if once:
		report = scheduler.tick(ctx.engine)
		report["purge_daily"] = cleanup.purge_daily(ctx.engine)
		ctx.emit(report)
		sys.exit(1 if "error" in report.values() else 0)
	scheduler.run_forever(ctx.engine, interval)


@command(cli)
@click.argument("job_id", required=False)
@click.option("--org", "organization", help="Watch every unfinished job of an organization.")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
def watch(ctx, job_id, organization, timeout):
	"""Live progress bars until the job (or every job of the organization) has finished.
	Exits 0 when every watched job Completed, 1 when one ended otherwise or the timeout passed."""
	from .watch import watch_jobs

	if bool(job_id) == bool(organization):
		raise ValidationError("job_id", "give a job id or --org, not both")
	if timeout is not None and not timeout > 0:
		raise ValidationError("timeout", "must be a positive number of seconds")
	final = watch_jobs(ctx.engine, job_id, organization, timeout, quiet=ctx.as_json)
	ctx.emit({"jobs": final}, lambda d: None)
	sys.exit(0 if all(job["status"] == states.COMPLETED for job in final) else 1)


@command(cli)
@click.option("--workers", "count", type=int, default=2, show_default=True)
def demo(ctx, count):
	"""Run every kind of job end to end with live progress, then print a summary."""
	from .demo import run_demo

	sys.exit(run_demo(ctx, count))


def _render_job(job: dict) -> None:
	table = Table(show_header=False, box=None)
	for key, value in job.items():
		if value not in (None, "", {}):
			table.add_row(f"[bold]{key}[/bold]", json.dumps(value) if isinstance(value, dict) else str(value))
	console.print(table)


def _render_list(page: dict) -> None:
	table = Table(
		Column("job_id", no_wrap=True, min_width=16),
		"job_type",
		"organization",
		"status",
		"progress",
		"retries",
		"created (UTC)",
	)
	for job in page["jobs"]:
		table.add_row(
			job["job_id"],
			job["job_type"],
			job["organization"],
			job["status"],
			f"{job['progress']:.0f}%",
			str(job["retry_count"]),
			(job["created_at"] or "")[:19].replace("T", " "),
		)
	console.print(table)
	console.print(f"{len(page['jobs'])} of {page['total']}")


def _render_items(page: dict) -> None:
	table = Table("#", "key", "status", "attempt", "result or error")
	for item in page["items"]:
		if item["error_message"] is not None:
			outcome = f"{item['error_type'] or 'Skipped'}: {item['error_message']}"
		else:
			outcome = "" if item["result"] is None else json.dumps(item["result"])
		table.add_row(
			str(item["index"]), escape(item["key"]), item["status"], str(item["attempt"]), escape(outcome)
		)
	console.print(table)
	console.print(f"{len(page['items'])} of {page['total']}")


def _render_history(document: dict) -> None:
	table = Table("#", "timestamp", "from", "to", "actor", "message")
	for e in document["entries"]:
		table.add_row(
			str(e["sequence"]),
			e["timestamp"],
			e["from_status"] or "",
			e["to_status"],
			e["actor"],
			e["message"],
		)
	console.print(table)
	console.print(
		"hash chain: "
		+ (
			"[green]intact[/green]"
			if document["chain_valid"]
			else f"[red]BROKEN[/red] ({document['chain_problem']})"
		)
	)


def _render_metrics(data: dict) -> None:
	console.print_json(data=data)


def main() -> None:
	cli(prog_name="dartwing-jobs")
