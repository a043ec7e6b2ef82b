"""Burst workers for the benchmark, with the same imports whatever they drain. Modes:
`raw` (stock rq.Worker, a forked work-horse per job) and `raw-simple` (rq.SimpleWorker, no fork)
drain the raw RQ queue; `engine` runs exactly what `dartwing-jobs worker --burst -n COUNT` runs
(long-lived children) and `engine-fork` what `--fork-per-job` runs, over the engine's queues.
BENCH_OTEL (below) says whether OpenTelemetry is there.

With BENCH_REPORT set, the worker appends one JSON line to that file describing its work loop
alone (`Worker.work`, after imports and the engine's warm-up): when it started and ended
(CLOCK_MONOTONIC, comparable between processes) and the CPU seconds and minor page faults of the
worker and its work-horses during it (for `engine`, each child reports its own loop)."""

import json
import os
import resource
import sys
import time

# BENCH_OTEL (instructions.py --otel): "absent" runs as if opentelemetry were not installed, "api"
# with the API and no SDK (what an install of the [otel] extra alone gives), "sdk" with an SDK
# that records every span and exports none (what creating the spans costs).
if os.environ.get("BENCH_OTEL") == "absent":
	sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # its import raises ImportError

from rq import Queue, SimpleWorker, Worker

from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.forking_worker import ForkingWorker
from dartwing.dartwing_core.background_jobs.registry import import_handler_modules
from dartwing.dartwing_core.background_jobs.worker import WarmWorker, run_worker, run_workers

WORKER_CLASSES = {
	"raw": Worker,
	"raw-simple": SimpleWorker,
	"engine": WarmWorker,
	"engine-fork": ForkingWorker,
}


def _usage(redis) -> tuple[float, float, int, int]:
	own, horses = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
	cpu = own.ru_utime + own.ru_stime + horses.ru_utime + horses.ru_stime
	return time.monotonic(), cpu, own.ru_minflt + horses.ru_minflt, redis_commands(redis)


def redis_commands(redis) -> int:
	"""Commands the Redis server has run so far, from every client (INFO commandstats), INFO
	itself excluded."""
	stats = redis.info("commandstats")
	return sum(stat["calls"] for name, stat in stats.items() if name != "cmdstat_info")


def reporting(worker_class) -> None:
	"""Wrap the class's work loop so its span and cost go to BENCH_REPORT. The loop ends where its
	teardown begins: RQ 3's own teardown can wait up to 60 s on its pub/sub thread (the engine's
	workers do not, see prefork.QuickExitWorker), which says nothing about throughput."""
	work, teardown = worker_class.work, worker_class.teardown

	def timed_teardown(self):
		self.loop_ended = _usage(self.connection)
		return teardown(self)

	def timed_work(self, *args, **kwargs):
		started = _usage(self.connection)
		try:
			return work(self, *args, **kwargs)
		finally:
			ended = getattr(self, "loop_ended", None) or _usage(self.connection)
			with open(os.environ["BENCH_REPORT"], "a") as report:
				report.write(
					json.dumps(
						{
							"start": started[0],
							"end": ended[0],
							"cpu": ended[1] - started[1],
							"faults": ended[2] - started[2],
							"redis_start": started[3],
							"redis_end": ended[3],
						}
					)
					+ "\n"
				)

	worker_class.work, worker_class.teardown = timed_work, timed_teardown


if __name__ == "__main__":
	mode, raw_queue, count = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1
	worker_class = WORKER_CLASSES[mode]
	if os.environ.get("BENCH_REPORT"):
		reporting(worker_class)
	import_handler_modules(["dartwing.dartwing_core.background_jobs.samples"])
	if os.environ.get("BENCH_OTEL") == "sdk":
		from opentelemetry import trace
		from opentelemetry.sdk.trace import TracerProvider

		trace.set_tracer_provider(TracerProvider())
	engine = build_engine()
	if mode.startswith("raw"):  # a stock RQ worker, as `rq worker --burst [-w rq.SimpleWorker]` runs it
		queue = Queue(raw_queue, connection=engine.queue.redis)
		worker_class([queue], connection=engine.queue.redis).work(
			burst=True, logging_level="WARNING", with_scheduler=False
		)
	elif mode == "engine":  # exactly what `dartwing-jobs worker --burst -n COUNT` runs
		sys.exit(1 if run_workers(engine, count, burst=True) else 0)
	else:  # exactly what `dartwing-jobs worker --burst --fork-per-job` runs
		run_worker(engine, burst=True)
