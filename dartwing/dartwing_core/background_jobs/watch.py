"""Live progress bars fed by Redis events, with the database re-read whenever events go quiet
(pub/sub forgets messages sent while nobody listened)."""

import time

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from . import states

_COLOURS = {
	states.COMPLETED: "green",
	states.DEAD_LETTER: "red",
	states.CANCELED: "yellow",
	states.FAILED: "magenta",
	states.TIMED_OUT: "magenta",
}


def _describe(job: dict) -> str:
	colour = _COLOURS.get(job["status"], "cyan")
	extra = job.get("progress_message") or job.get("error_message") or ""
	if job["status"] in states.WAITING_RETRY and job.get("next_retry_at"):
		extra = f"retry at {job['next_retry_at'][11:19]}: {job.get('error_message') or ''}"
	return f"{job['job_type']:<11} [{colour}]{job['status']:<11}[/{colour}] {extra[:60]}"


def watch_jobs(
	engine, job_id=None, organization=None, timeout=None, quiet=False, refresh_every=1.0
) -> list[dict]:
	"""Return the jobs' final states once every watched job has finished (or at the timeout)."""
	jobs = {}
	if job_id:
		jobs[job_id] = engine.status(job_id)

	def refresh():
		for jid in list(jobs):
			jobs[jid] = engine.status(jid)
		if organization:
			for status in states.UNFINISHED:
				for job in engine.list_jobs(organization, status, limit=100)["jobs"]:
					jobs[job["job_id"]] = job

	refresh()
	deadline = None if timeout is None else time.monotonic() + timeout
	progress = Progress(
		TextColumn("{task.fields[job_id]}"),
		BarColumn(),
		TextColumn("{task.percentage:>3.0f}%"),
		TextColumn("{task.description}"),
		TimeElapsedColumn(),
		disable=quiet,
	)
	bars = {}
	last_refresh = time.monotonic()
	with progress:
		for event in engine.events.subscribe(job_id=job_id, organization=None if job_id else organization):
			if event and (event["job_id"] in jobs or organization):
				jobs[event["job_id"]] = event
			if event is None or time.monotonic() - last_refresh > refresh_every:
				refresh()
				last_refresh = time.monotonic()
			for jid, job in jobs.items():
				if jid not in bars:
					bars[jid] = progress.add_task("", total=100, job_id=jid)
				progress.update(bars[jid], completed=job["progress"], description=_describe(job))
			if all(j["status"] in states.TERMINAL for j in jobs.values()):  # nothing left to watch
				refresh()
				if all(j["status"] in states.TERMINAL for j in jobs.values()):
					break
			if deadline and time.monotonic() > deadline:
				break
	return list(jobs.values())
