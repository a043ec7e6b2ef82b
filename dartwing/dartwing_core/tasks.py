"""The entry points hooks.py (scheduler events) and the engine's queue messages name: each runs
in a site context that Frappe has set up (a worker's execute_job, the scheduler)."""

from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
from dartwing.dartwing_core.background_jobs.backends.frappe_store import read_committed


def run_job(background_job: str, message_id: str) -> str:
	"""What every queue message runs, inside frappe's execute_job (site connected)."""
	from dartwing.dartwing_core.background_jobs.executor import execute

	read_committed()
	return execute(get_engine(), background_job, message_id)


def scheduler_tick() -> dict:
	"""Per-minute cron: due retries, pending releases, orphan rescue, lost messages, hard stops,
	due delayed jobs and Job Schedules (one job per schedule and due time, whatever runs it)."""
	from dartwing.dartwing_core.background_jobs.scheduler import tick

	read_committed()
	return tick(get_engine())


def purge_daily() -> int:
	"""Daily cron. Frappe's scheduler already runs it once a day; the standalone scheduler's
	24-hour lock would skip a day whenever today's run starts earlier than yesterday's."""
	from dartwing.dartwing_core.background_jobs.cleanup import purge

	read_committed()
	return purge(get_engine())
