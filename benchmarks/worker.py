"""One burst worker for the benchmark: the same process, imports and RQ Worker class whether it
drains the raw RQ queue (baseline) or the engine's priority queues."""

import sys

from rq import Queue, Worker

from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.registry import import_handler_modules
from dartwing.dartwing_core.background_jobs.worker import run_worker

if __name__ == "__main__":
	mode, raw_queue = sys.argv[1], sys.argv[2]
	import_handler_modules(["dartwing.dartwing_core.background_jobs.samples"])
	engine = build_engine()
	if mode == "raw":  # a stock RQ worker, as `rq worker --burst` runs it
		queue = Queue(raw_queue, connection=engine.queue.redis)
		Worker([queue], connection=engine.queue.redis).work(
			burst=True, logging_level="WARNING", with_scheduler=False
		)
	else:  # exactly what `dartwing-jobs worker --burst` runs
		run_worker(engine, burst=True)
