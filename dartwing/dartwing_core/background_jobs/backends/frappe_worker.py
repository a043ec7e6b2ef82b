"""`bench --site SITE dartwing-worker`: dartwing jobs without a fork per job.

A supervisor process preloads Frappe, this app and every app's handlers (frappe_preload), then
forks N long-lived children. Each child connects to the site once, builds the engine once and runs
an RQ worker over the queues: a dartwing message of its site runs in the child itself, through
Frappe's own `execute_job` with the site already connected (handlers, statements and connection
stay warm); any other message (another site's, a plain Frappe job) is run as `bench worker` runs
it, in a work-horse forked for it.

The supervisor, the children's slots, deadlines, replacement and the settling of a dead child's
job are the standalone worker's too (prefork.py, which says how each guarantee is kept).
"""

import contextlib

import frappe
from frappe.utils.background_jobs import get_queue_list, get_redis_conn

from ..executor import settle_lost_run
from ..prefork import InProcessWorker, Running, Slot, supervise
from .frappe_backend import get_engine
from .frappe_queue import RUN_JOB_PATHS


class WarmWorker(InProcessWorker):
	"""Runs its site's dartwing messages in its own process, through Frappe's own `execute_job`
	with the site already connected."""

	def __init__(self, *args, site: str, sites_path: str, **kwargs):
		super().__init__(*args, **kwargs)
		self.site = site
		self.sites_path = sites_path

	def job_of(self, message) -> tuple[str, str] | None:
		kwargs = message.kwargs
		if kwargs.get("site") != self.site or kwargs.get("method") not in RUN_JOB_PATHS:
			return None
		return kwargs["kwargs"]["background_job"], kwargs["kwargs"]["message_id"]

	def before_in_process(self, message) -> None:
		"""Each job starts as in a new horse (flags, config, caches, session), on the warm
		connection, which is checked and opened again when the server dropped it."""
		message.kwargs["is_async"] = False  # execute_job then uses this process's site connection
		db = getattr(frappe.local, "db", None)
		frappe.init(site=self.site, sites_path=self.sites_path, force=True)
		try:
			if db is None:
				raise ConnectionError("no connection")
			db.sql("select 1")
			frappe.local.db = db
			db.value_cache = {}
			db.auto_commit_on_many_writes = 0
		except Exception:
			with contextlib.suppress(Exception):
				if db is not None:
					db.close()
			frappe.connect()
		frappe.set_user("Administrator")

	def broken_after_job(self) -> bool:
		"""Frappe's retry path destroys the site: start afresh."""
		return not getattr(frappe.local, "initialised", False) or getattr(frappe.local, "db", None) is None

	def main_work_horse(self, job, queue):
		"""In a horse forked for another site's or a plain Frappe message: forget this child's
		site before Frappe's execute_job initialises the message's own (and never close this
		child's connection from here: the socket is the child's)."""
		from werkzeug.local import release_local

		frappe.local.db = None
		release_local(frappe.local)
		return super().main_work_horse(job, queue)


def run(
	site: str,
	workers: int = 1,
	burst: bool = False,
	queue: str | None = None,
	max_jobs_per_child: int = 0,
	max_memory_per_child: int = 0,
	sites_path: str = ".",
) -> int:
	"""The supervisor: keeps `workers` children running until stopped (or, with `burst`, until
	each has found the queues empty). Returns how many children failed."""
	frappe.init(site=site, sites_path=sites_path)
	queues = get_queue_list(queue.split(",") if queue else None, build_queue_name=True)
	frappe.destroy()

	def run_child(slot: Slot) -> int:
		frappe.init(site=site, sites_path=sites_path)
		frappe.connect()
		engine = get_engine()  # built once, warm for every job
		worker = WarmWorker(
			queues,
			connection=get_redis_conn(),
			site=site,
			sites_path=sites_path,
			slot=slot,
			grace_seconds=engine.settings.cancel_grace_seconds,
			max_memory_mb=max_memory_per_child,
		)
		return worker.serve(burst, max_jobs_per_child)

	def settle_lost(running: Running, exitcode: int | None) -> None:
		frappe.init(site=site, sites_path=sites_path)
		try:
			frappe.connect()
			how = f"the dartwing-worker child running it exited ({exitcode})"
			settle_lost_run(get_engine(), running.job_id, running.message_id, how)
			frappe.db.commit()
		finally:
			frappe.destroy()

	return supervise(run_child, settle_lost, workers, burst)
