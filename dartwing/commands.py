"""Bench commands of the app. Bench imports this module in every `bench ...` process, the parent of
`bench worker` included, before that worker forks a work-horse per job: there it preloads what a
dartwing job's horse would otherwise import each time (backends/frappe_preload.py).
DARTWING_PRELOAD=0 turns that off."""

import os
import sys

import click
from frappe.commands import pass_context

WORKER_COMMANDS = {"worker", "worker-pool", "dartwing-worker"}

if os.environ.get("DARTWING_PRELOAD", "1") != "0" and WORKER_COMMANDS & set(sys.argv[1:]):
	from dartwing.dartwing_core.background_jobs.backends.frappe_preload import preload

	preload(os.getcwd())


@click.command("dartwing-worker")
@click.option("--workers", "-n", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--queue", help="Queues, highest first (default: all of the site's, as bench worker)")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option(
	"--max-jobs-per-child", type=click.IntRange(0), default=0, help="Replace a child after this many jobs."
)
@click.option(
	"--max-memory-per-child", type=click.IntRange(0), default=0, help="Replace a child past this many MB."
)
@pass_context
def dartwing_worker(context, workers, queue, burst, max_jobs_per_child, max_memory_per_child):
	"""Run dartwing jobs in long-lived children, without a fork per job (see frappe_worker.py)."""
	from frappe.commands import get_site

	from dartwing.dartwing_core.background_jobs.backends.frappe_worker import run

	failed = run(
		get_site(context),
		workers=workers,
		burst=burst,
		queue=queue,
		max_jobs_per_child=max_jobs_per_child,
		max_memory_per_child=max_memory_per_child,
		sites_path=os.getcwd(),
	)
	sys.exit(1 if failed else 0)


commands = [dartwing_worker]
