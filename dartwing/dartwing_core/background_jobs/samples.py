"""Sample handlers: the sample_job of the fixtures, and the demo's kinds of job (one that succeeds,
one that fails transiently then succeeds, one that fails permanently, one that times out, one long
enough to cancel) plus a no-op for benchmarks."""

import time

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
