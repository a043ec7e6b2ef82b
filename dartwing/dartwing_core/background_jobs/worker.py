"""Worker processes for the standalone backend: RQ workers that drain the priority queues in order."""

import gc
import logging
import multiprocessing
import os
import signal

from rq import Worker

from . import runtime


def run_worker(engine, burst: bool = False) -> None:
	"""One RQ worker (forking a work-horse per job, as RQ and Frappe's bench workers do)."""
	runtime.configure(engine)
	_warm_up(engine)
	worker = Worker(engine.queue.in_priority_order(), connection=engine.queue.redis)
	worker.work(
		burst=burst, logging_level=logging.getLevelName(logging.getLogger().level), with_scheduler=False
	)


def _warm_up(engine) -> None:
	"""Each job runs in a forked work-horse that inherits this process's state: connect and compile
	the executor's reads here once, rather than in every horse."""
	from . import executor  # noqa: F401 - imported for the horses

	for doctype in ("Background Job", "Organization", "Job Type"):
		engine.store.get(doctype, "")
	# Move everything allocated so far out of the garbage collector's reach, so collections in a
	# horse do not write to (and so copy) every page shared with this process.
	gc.freeze()


def run_workers(engine, count: int, burst: bool = False) -> int:
	"""`count` workers as child processes; SIGTERM/SIGINT stop them all. Returns failed children."""
	if count == 1:
		run_worker(engine, burst)
		return 0
	context = multiprocessing.get_context("fork")
	children = [context.Process(target=run_worker, args=(engine, burst), daemon=False) for _ in range(count)]
	for child in children:
		child.start()

	def forward(signum, _frame):
		for child in children:
			if child.pid and child.is_alive():
				os.kill(child.pid, signum)

	previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
	try:
		for child in children:
			child.join()
	finally:
		for s, handler in previous.items():
			signal.signal(s, handler)
	return sum(1 for child in children if child.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT))
