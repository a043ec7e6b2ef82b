"""Instructions per job, raw RQ against the engine, counted by valgrind's callgrind.

Unlike time, an instruction count hardly moves with the load of a shared machine, so it shows
what a change to the hot path costs. A work-horse's count repeats to within 0.05 M; the worker's
share moves by up to about 2 M per job, because RQ's worker also does housekeeping on a clock,
and under valgrind the clock ticks more often per job. For each mode, N no-op jobs are queued and
one burst worker (benchmarks/worker.py, the same worker throughput.py runs) drains them under
`valgrind --tool=callgrind`, which dumps the worker's counters before every fork so the worker's
own instructions and each work-horse's are counted apart. Per job: the median horse, plus the
worker's run minus a run on an empty queue (start-up), divided by N.

Not counted: the kernel's work (fork, page faults, I/O), which throughput.py's CPU figures include.

	.venv/bin/python benchmarks/instructions.py --jobs 10 --db sqlite
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from rq import Queue
from throughput import bench_engine

from dartwing.dartwing_core.background_jobs.registry import import_handler_modules

HERE = Path(__file__).resolve().parent


def callgrind_total(path: Path) -> int:
	for line in path.read_text(errors="replace").splitlines():
		if line.startswith(("totals:", "summary:")):
			return int(line.split()[1])
	raise SystemExit(f"{path}: no totals line")


def counted_drain(mode: str, raw_queue: str, env: dict, out: Path) -> tuple[int, list[int]]:
	"""(the worker's instructions, each work-horse's) for one burst worker under callgrind."""
	out.mkdir()
	worker = subprocess.Popen(
		[
			"valgrind",
			"--tool=callgrind",
			f"--callgrind-out-file={out}/cg.%p",
			"--dump-before=_Fork",  # glibc >= 2.34: the worker's counts before each fork, apart
			sys.executable,
			str(HERE / "worker.py"),
			mode,
			raw_queue,
		],
		env=env,
		stderr=subprocess.DEVNULL,
	)
	if worker.wait() != 0:
		raise SystemExit(f"the {mode} worker under valgrind exited with {worker.returncode}")
	mine = [
		p for p in out.iterdir() if p.name == f"cg.{worker.pid}" or p.name.startswith(f"cg.{worker.pid}.")
	]
	horses = [callgrind_total(p) for p in out.iterdir() if p not in mine]
	return sum(callgrind_total(p) for p in mine), horses


def measure(kind: str, jobs: int) -> dict | None:
	prefix = f"dwinstr-{uuid.uuid4().hex[:6]}"
	with tempfile.TemporaryDirectory() as tmp, bench_engine(kind, Path(tmp), prefix) as ready:
		if ready is None:
			return None
		engine, env = ready
		env = {**env, "DARTWING_LOG_LEVEL": "WARNING"}
		raw = Queue(f"{prefix}-raw", connection=engine.queue.redis)
		results = {}
		for mode in ("raw", "engine"):
			for n in range(jobs):
				if mode == "raw":
					raw.enqueue_call(func="os.getpid", result_ttl=0)
				else:
					engine.submit("noop", "Bench", {"n": n}, triggered_by="benchmark")
			loaded, horses = counted_drain(mode, raw.name, env, Path(tmp) / f"{mode}-loaded")
			empty, _ = counted_drain(mode, raw.name, env, Path(tmp) / f"{mode}-empty")
			if len(horses) != jobs:
				raise SystemExit(f"{mode}: {len(horses)} work-horses for {jobs} jobs")
			results[mode] = (statistics.median(horses), (loaded - empty) / jobs)
	return results


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument(
		"--jobs", type=int, default=10, help="jobs per mode (each costs seconds under valgrind)"
	)
	parser.add_argument("--db", default="sqlite")
	args = parser.parse_args()
	if shutil.which("valgrind") is None:
		raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind); nothing measured")
	import_handler_modules(["dartwing.dartwing_core.background_jobs.samples"])
	print(f"{args.jobs} no-op jobs per mode, one rq.Worker under callgrind; millions of instructions per job")
	print(f"{'database':<11}{'mode':<8}{'work-horse':>11}{'worker':>9}{'total':>9}{'raw / engine':>14}")
	for kind in args.db.split(","):
		results = measure(kind.strip(), args.jobs)
		if not results:
			continue
		totals = {mode: horse + worker for mode, (horse, worker) in results.items()}
		for mode, (horse, worker) in results.items():
			ratio = f"{totals['raw'] / totals['engine']:.2f}" if mode == "engine" else ""
			print(
				f"{kind:<11}{mode:<8}{horse / 1e6:>11.2f}{worker / 1e6:>9.2f}{totals[mode] / 1e6:>9.2f}{ratio:>14}"
			)


if __name__ == "__main__":
	main()
