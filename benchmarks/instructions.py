"""Instructions per job, raw RQ's workers against the engine's, counted by valgrind's callgrind.

Unlike time, an instruction count hardly moves with the load of a shared machine, so it shows
what a change to the hot path costs. For each mode, N no-op jobs are queued and one burst worker
(benchmarks/worker.py, the same workers throughput.py runs) drains them under
`valgrind --tool=callgrind`, which writes each process's counters apart and dumps a process's
counters before every fork, so a worker's own instructions and each work-horse's are apart.
Per job: the processes that live through the drain (a worker; the engine's child, and apart its
supervisor) count their run minus a run on an empty queue (start-up), divided by N; a mode that
forks per job adds its median work-horse. A work-horse's count repeats to within 0.05 M; a worker's
share moves by up to about 2 M per job, because RQ's worker also does housekeeping on a clock,
which ticks more often per job under valgrind.

Modes: raw RQ `Worker` (fork per job) and `SimpleWorker` (no fork); the engine's default worker
(one long-lived child) and `--fork-per-job`; with `--otel absent,api,sdk`, each mode again without
OpenTelemetry installed, with the API alone, and with an SDK recording spans. Not counted: the
kernel's work (fork, page faults, I/O), which throughput.py's CPU figures include.

	.venv/bin/python benchmarks/instructions.py --jobs 10 --db sqlite
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
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


FORKING_MODES = {"raw", "engine-fork"}
MODES = ("raw", "raw-simple", "engine", "engine-fork")


def counted_drain(mode: str, raw_queue: str, env: dict, out: Path) -> tuple[int, list[int]]:
	"""(the started process's instructions, each process it forked: work-horses, or the engine's
	child) for one burst worker under callgrind."""
	out.mkdir()
	worker = subprocess.Popen(
		[
			"valgrind",
			"--tool=callgrind",
			f"--callgrind-out-file={out}/cg.%p",
			"--dump-before=_Fork",  # glibc >= 2.34: a process's counts before each fork, apart
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
	by_pid: dict[str, int] = {}
	for path in out.iterdir():
		pid = path.name.split(".")[1]
		by_pid[pid] = by_pid.get(pid, 0) + callgrind_total(path)
	own = by_pid.pop(str(worker.pid))
	return own, list(by_pid.values())


OTEL = ("absent", "api", "sdk")


def measure(kind: str, jobs: int, modes: Sequence[str] = MODES, otel: str | None = None) -> dict | None:
	prefix = f"dwinstr-{uuid.uuid4().hex[:6]}"
	with tempfile.TemporaryDirectory() as tmp, bench_engine(kind, Path(tmp), prefix) as ready:
		if ready is None:
			return None
		engine, env = ready
		env = {**env, "DARTWING_LOG_LEVEL": "WARNING", **({"BENCH_OTEL": otel} if otel else {})}
		raw = Queue(f"{prefix}-raw", connection=engine.queue.redis)
		results = {}
		for mode in modes:
			for n in range(jobs):
				if mode.startswith("raw"):
					raw.enqueue_call(func="os.getpid", result_ttl=0)
				else:
					engine.submit("noop", "Bench", {"n": f"{mode}-{n}"}, triggered_by="benchmark")
			loaded, forked = counted_drain(mode, raw.name, env, Path(tmp) / f"{mode}-loaded")
			empty, forked_empty = counted_drain(mode, raw.name, env, Path(tmp) / f"{mode}-empty")
			if mode in FORKING_MODES:
				if len(forked) != jobs:
					raise SystemExit(f"{mode}: {len(forked)} work-horses for {jobs} jobs")
				results[mode] = (statistics.median(forked), (loaded - empty) / jobs, 0.0)
			elif mode == "engine":  # the supervisor's own polling, then its child's runs
				child = (sum(forked) - sum(forked_empty)) / jobs
				results[mode] = (0.0, child, (loaded - empty) / jobs)
			else:
				results[mode] = (0.0, (loaded - empty) / jobs, 0.0)
	return results


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument(
		"--jobs", type=int, default=10, help="jobs per mode (each costs seconds under valgrind)"
	)
	parser.add_argument("--db", default="sqlite")
	parser.add_argument(
		"--modes", default=",".join(MODES), help="a comma-separated subset of " + ",".join(MODES)
	)
	parser.add_argument(
		"--otel",
		default="",
		help="repeat each mode with OpenTelemetry: a comma-separated subset of "
		+ ",".join(OTEL)
		+ " (not installed; the API without an SDK; an SDK recording every span, exporting none)",
	)
	args = parser.parse_args()
	modes = [mode.strip() for mode in args.modes.split(",")]
	otel_settings = [setting.strip() for setting in args.otel.split(",") if setting.strip()] or [None]
	if not set(otel_settings) <= {None, *OTEL}:
		raise SystemExit(f"--otel: choose from {', '.join(OTEL)}")
	if shutil.which("valgrind") is None:
		raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind); nothing measured")
	import_handler_modules(["dartwing.dartwing_core.background_jobs.samples"])
	print(f"{args.jobs} no-op jobs per mode, one worker under callgrind; millions of instructions per job")
	print(
		f"{'database':<11}{'mode':<20}{'work-horse':>11}{'worker':>9}{'supervisor':>11}{'total':>9}"
		f"{'SimpleWorker / mode':>21}{'Worker / mode':>15}"
	)
	for kind in args.db.split(","):
		for otel in otel_settings:
			results = measure(kind.strip(), args.jobs, modes, otel)
			if not results:
				continue
			totals = {mode: sum(parts) for mode, parts in results.items()}
			for mode, (horse, worker, supervisor) in results.items():
				label = f"{mode} otel={otel}" if otel else mode
				print(
					f"{kind:<11}{label:<20}{horse / 1e6:>11.2f}{worker / 1e6:>9.2f}{supervisor / 1e6:>11.2f}"
					f"{totals[mode] / 1e6:>9.2f}{_ratio(totals, 'raw-simple', mode):>21}"
					f"{_ratio(totals, 'raw', mode):>15}"
				)


def _ratio(totals: dict, baseline: str, mode: str) -> str:
	return f"{totals[baseline] / totals[mode]:.2f}" if baseline in totals else "-"


if __name__ == "__main__":
	main()
