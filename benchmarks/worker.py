"""One burst worker for the benchmark: the same process, imports and RQ Worker class whether it
drains the raw RQ queue (baseline) or the engine's priority queues.

With BENCH_REPORT set, the worker appends one JSON line to that file describing its work loop
alone (`Worker.work`, after imports and the engine's warm-up): when it started and ended
(CLOCK_MONOTONIC, comparable between processes) and the CPU seconds and minor page faults of the
worker and its work-horses during it."""

import json
import os
import resource
import sys
import time

from rq import Queue, Worker

from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.forking_worker import ForkingWorker
from dartwing.dartwing_core.background_jobs.registry import import_handler_modules
from dartwing.dartwing_core.background_jobs.worker import run_worker


def _usage() -> tuple[float, float, int]:
	own, horses = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
	cpu = own.ru_utime + own.ru_stime + horses.ru_utime + horses.ru_stime
	return time.monotonic(), cpu, own.ru_minflt + horses.ru_minflt


def reporting(work):
	"""Wrap a Worker.work so the loop's span and cost go to BENCH_REPORT."""

	def timed_work(self, *args, **kwargs):
		started = _usage()
		try:
			return work(self, *args, **kwargs)
		finally:
			ended = _usage()
			with open(os.environ["BENCH_REPORT"], "a") as report:
				report.write(
					json.dumps(
						{
							"start": started[0],
							"end": ended[0],
							"cpu": ended[1] - started[1],
							"faults": ended[2] - started[2],
						}
					)
					+ "\n"
				)

	return timed_work


if __name__ == "__main__":
	mode, raw_queue = sys.argv[1], sys.argv[2]
	if os.environ.get("BENCH_REPORT"):
		worker_class = Worker if mode == "raw" else ForkingWorker
		worker_class.work = reporting(worker_class.work)
	import_handler_modules(["dartwing.dartwing_core.background_jobs.samples"])
	engine = build_engine()
	if mode == "raw":  # a stock RQ worker, as `rq worker --burst` runs it
		queue = Queue(raw_queue, connection=engine.queue.redis)
		Worker([queue], connection=engine.queue.redis).work(
			burst=True, logging_level="WARNING", with_scheduler=False
		)
	else:  # exactly what `dartwing-jobs worker --burst` runs
		run_worker(engine, burst=True)
