"""Sample handlers: the sample_job of the fixtures, and the demo's kinds of job (one that succeeds,
one that fails transiently then succeeds, one that fails permanently, one that times out, one long
enough to cancel), a resumable import through steps and items, plus a no-op for benchmarks."""

import time
from pathlib import Path

from .errors import PermanentError, TransientError
from .registry import job_handler


@job_handler("sample_job", timeout=300, max_retries=3, base_delay=5, deduplication_window=0)
def sample_job(ctx, steps: int = 10, delay: float = 0.2, label: str = "sample"):
	"""Counts through `steps`, reporting progress: the smallest real job."""
	for step in range(1, steps + 1):
		ctx.checkpoint()
		time.sleep(delay)
		ctx.progress(100 * step / steps, f"{label}: step {step}/{steps}")
	return {"output_reference": f"/files/{label}-{ctx.job_id}.txt", "steps": steps}


@job_handler(
	"flaky_job", timeout=60, max_retries=3, base_delay=1, max_delay=5, jitter=0.2, deduplication_window=0
)
def flaky_job(ctx, failures: int = 2, label: str = "flaky"):
	"""Fails with a transient error on its first `failures` attempts, then succeeds."""
	ctx.progress(50, f"attempt {ctx.attempt}")
	if ctx.attempt <= failures:
		raise TransientError(f"upstream busy on attempt {ctx.attempt}")
	return f"/files/{label}-{ctx.job_id}.txt"


@job_handler("broken_job", timeout=60, max_retries=3, base_delay=1, deduplication_window=0)
def broken_job(ctx, reason: str = "invalid input file"):
	"""Fails permanently: no retry can help, so it goes straight to Dead Letter."""
	raise PermanentError(reason)


@job_handler("slow_job", timeout=2, max_retries=1, base_delay=1, max_delay=2, deduplication_window=0)
def slow_job(ctx, seconds: float = 30):
	"""Sleeps past its 2 s timeout: timed out, retried once, then dead-lettered."""
	time.sleep(seconds)


@job_handler("long_job", timeout=600, max_retries=0, deduplication_window=0)
def long_job(ctx, steps: int = 100, delay: float = 0.1):
	"""Long work with checkpoints, to be canceled."""
	for step in range(1, steps + 1):
		ctx.checkpoint()
		time.sleep(delay)
		ctx.progress(100 * step / steps, f"step {step}/{steps}")


@job_handler("noop", timeout=60, max_retries=0, deduplication_window=0)
def noop(ctx, n: int = 0):
	"""Does nothing: measures the engine's own overhead."""


@job_handler(
	"import_rows",
	timeout=600,
	max_retries=3,
	base_delay=1,
	deduplication_window=0,
	steps=["fetch", "import", "report"],
	max_failed_items=0,
)
def import_rows(ctx, rows: int = 200, delay: float = 0.02, ledger: str = ""):
	"""Imports `rows` rows through steps (fetch, import, report) and items: a crash, a retry or a
	pause resumes where it stopped. Each imported row is a file named after its item key in the
	`ledger` folder (if given): written again, never twice, when an item runs again after a crash."""
	source = ctx.step("fetch", lambda: {"rows": rows, "fetched_by": ctx.job_id})
	folder = Path(ledger) if ledger else None

	def import_row(row: dict) -> dict:
		time.sleep(delay)
		if folder is not None:
			(folder / ctx.item_key.replace(":", "-")).write_text(f"{row['amount']}\n")
		return {"imported": row["id"]}

	summary = ctx.step(
		"import",
		ctx.each,
		lambda: ({"id": f"row-{n}", "amount": n * 10} for n in range(source["rows"])),
		import_row,
		key=lambda row: row["id"],
	)
	return ctx.step("report", lambda: {**summary, "output_reference": f"/files/import-{ctx.job_id}.csv"})
