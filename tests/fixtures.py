"""Handlers used by the tests. Module level, so worker processes import them by name
(DARTWING_IMPORTS=tests.fixtures)."""

import os
import signal
import time
from pathlib import Path

from dartwing.dartwing_core.background_jobs import PermanentError, SkipItem, TransientError, job_handler


@job_handler("t_echo", timeout=30, max_retries=2, base_delay=0, jitter=0, deduplication_window=300)
def t_echo(ctx, value: str = "x", progress_steps: int = 0):
	for step in range(1, progress_steps + 1):
		ctx.progress(100 * step / progress_steps, f"{step}/{progress_steps}")
	return {"output_reference": f"/files/{value}", "value": value, "attempt": ctx.attempt, "user": ctx.user}


@job_handler("t_flaky", timeout=30, max_retries=3, base_delay=0, jitter=0, deduplication_window=0)
def t_flaky(ctx, failures: int = 1):
	if ctx.attempt <= failures:
		raise TransientError(f"flaky on attempt {ctx.attempt}")
	return "done"


@job_handler("t_permanent", timeout=30, max_retries=3, base_delay=0, deduplication_window=0)
def t_permanent(ctx):
	raise PermanentError("bad input file")


@job_handler("t_value_error", timeout=30, max_retries=3, base_delay=0, deduplication_window=0)
def t_value_error(ctx):
	raise ValueError("not a number")


class QuotaExceeded(Exception):
	"""A handler's own error that a retry cannot fix (it names it in give_up_on)."""


@job_handler(
	"t_own_rules",
	timeout=30,
	max_retries=3,
	base_delay=0,
	jitter=0,
	deduplication_window=0,
	give_up_on=QuotaExceeded,
	retry_on=(KeyError,),
)
def t_own_rules(ctx, raise_: str = "quota"):
	"""KeyError is permanent and ConnectionError transient by the built-in map: this handler says
	otherwise for KeyError (a cache miss: retry) and adds its own permanent QuotaExceeded."""
	if raise_ == "quota":
		raise QuotaExceeded("monthly quota used up") from ConnectionError("the reason it was logged")
	raise KeyError("cache miss")


@job_handler("t_unknown_error", timeout=30, max_retries=1, base_delay=0, jitter=0, deduplication_window=0)
def t_unknown_error(ctx):
	raise RuntimeError("something odd")


@job_handler("t_sleep", timeout=1, max_retries=1, base_delay=0, jitter=0, deduplication_window=0)
def t_sleep(ctx, seconds: float = 5):
	time.sleep(seconds)


@job_handler("t_swallow_timeout", timeout=1, max_retries=0, deduplication_window=0)
def t_swallow_timeout(ctx, seconds: float = 3):
	"""A handler that catches Exception must still be stopped by its timeout."""
	try:
		time.sleep(seconds)
	except Exception:
		return "swallowed"


@job_handler("t_checkpoints", timeout=60, max_retries=0, deduplication_window=0)
def t_checkpoints(ctx, steps: int = 200, delay: float = 0.05, marker: str = ""):
	if marker:
		Path(marker).write_text(str(os.getpid()))
	for step in range(steps):
		ctx.checkpoint()
		ctx.progress(100 * step / steps, f"step {step}")
		time.sleep(delay)
	return "finished"


@job_handler("t_ignores_cancel", timeout=60, max_retries=0, deduplication_window=0)
def t_ignores_cancel(ctx, seconds: float = 30, marker: str = ""):
	if marker:
		Path(marker).write_text(str(os.getpid()))
	time.sleep(seconds)
	return "finished"


@job_handler("t_marker_once", timeout=60, max_retries=3, base_delay=0, jitter=0, deduplication_window=0)
def t_marker_once(ctx, marker: str, hold: float = 30):
	"""First attempt writes its pid to `marker` and hangs (to be killed); later attempts finish."""
	path = Path(marker)
	if not path.exists():
		path.write_text(str(os.getpid()))
		time.sleep(hold)
	return {"attempt": ctx.attempt}


@job_handler("t_bad_return", timeout=30, max_retries=2, deduplication_window=0)
def t_bad_return(ctx):
	return 42


@job_handler("t_admin_only", timeout=30, requires_permission="Dartwing Admin", deduplication_window=0)
def t_admin_only(ctx):
	return None


@job_handler(
	"t_fails_after_cancel", timeout=30, max_retries=3, base_delay=0, jitter=0, deduplication_window=0
)
def t_fails_after_cancel(ctx, wait: float = 20):
	"""Never calls checkpoint(): waits (up to `wait` s) for a cancel request, then fails transiently."""
	deadline = time.monotonic() + wait
	while time.monotonic() < deadline:
		if ctx.engine.store.get("Background Job", ctx.job_id).get("cancel_requested_at"):
			break
		time.sleep(0.05)
	raise TransientError("upstream unavailable")


@job_handler("t_blocks_alarm", timeout=1, max_retries=1, base_delay=60, deduplication_window=0)
def t_blocks_alarm(ctx, marker: str, seconds: float = 30):
	"""Blocks SIGALRM, so its deadline cannot stop it: only a kill can (RQ's backstop, or a test)."""
	signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
	Path(marker).write_text(str(os.getpid()))
	time.sleep(seconds)


_HELD: list[bytearray] = []  # what t_pid keeps, so its process stays large


@job_handler("t_pid", timeout=30, max_retries=0, deduplication_window=0)
def t_pid(ctx, n: int = 0, hold_mb: int = 0):
	"""Says which process ran it; with `hold_mb`, leaves that process that much larger."""
	if hold_mb:
		block = bytearray(hold_mb * 1024 * 1024)
		block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just mapped
		_HELD.append(block)
	return {"pid": os.getpid()}


def _count_call(marker: str, what: str) -> None:
	"""One line per call of `what` in the file `marker`: tests count how often a step ran."""
	with open(marker, "a") as calls:
		calls.write(what + "\n")


def _call(marker: str, what: str, value=None):
	_count_call(marker, what)
	return value


@job_handler(
	"t_steps",
	timeout=30,
	max_retries=3,
	base_delay=0,
	jitter=0,
	deduplication_window=0,
	steps=["fetch", "classify", "file"],
)
def t_steps(
	ctx, marker: str, fail_in: str = "", fail_attempts: int = 1, hang_in: str = "", pid_file: str = ""
):
	"""Three declared steps; each call is counted in `marker`. `fail_in`: that step raises a
	transient error in the first `fail_attempts` attempts; `hang_in`: that step writes the
	process id to `pid_file` and hangs in the first attempt (to be killed)."""

	def work(name: str, value):
		_count_call(marker, name)
		if name == fail_in and ctx.attempt <= fail_attempts:
			raise TransientError(f"{name} failed on attempt {ctx.attempt}")
		if name == hang_in and ctx.attempt == 1:
			Path(pid_file).write_text(str(os.getpid()))
			time.sleep(60)
		return value

	rows = ctx.step("fetch", work, "fetch", {"rows": [1, 2, 3]})
	kinds = ctx.step("classify", work, "classify", [len(rows["rows"]), "invoice"])
	ctx.step("file", work, "file", None)
	return {"rows": rows, "kinds": kinds}


@job_handler("t_step_misuse", timeout=30, max_retries=2, base_delay=0, deduplication_window=0, steps=["one"])
def t_step_misuse(ctx, misuse: str, marker: str = ""):
	"""A handler that misuses steps: an undeclared name, a name twice, a result that is not JSON."""
	if misuse == "undeclared":
		ctx.step("two", _call, marker, "two")
	elif misuse == "twice":
		ctx.step("one", _call, marker, "one")
		ctx.step("one", _call, marker, "one")
	elif misuse == "not_json":
		ctx.step("one", _call, marker, "one", {1, 2})
	return "misused"


@job_handler("t_step_timeout", timeout=30, max_retries=1, base_delay=0, jitter=0, deduplication_window=0)
def t_step_timeout(ctx, marker: str, seconds: float = 5, timeout: float = 0.3):
	"""Undeclared steps (any name); the second sleeps past its timeout in the first attempt."""
	ctx.step("quick", _call, marker, "quick", "ok")
	ctx.progress(50, "my own progress")

	def slow():
		_count_call(marker, "slow")
		if ctx.attempt == 1:
			time.sleep(seconds)
		return "slow done"

	return {"slow": ctx.step("slow", slow, timeout=timeout)}


def _rows(count: int) -> list[dict]:
	return [{"id": f"r{n}", "n": n} for n in range(count)]


def _items_handler(ctx, marker, count, fail, fail_attempts, skip, hang_at, pid_file, delay, fail_flag=""):
	"""Processes `count` rows keyed by id, each call counted in `marker` as attempt:key:item_key.
	Rows in `fail` fail in the first `fail_attempts` attempts, or while the file `fail_flag` exists."""

	def process(row: dict):
		_count_call(marker, f"{ctx.attempt}:{row['id']}:{ctx.item_key}")
		if delay:
			time.sleep(delay)
		if row["n"] == hang_at and ctx.attempt == 1:
			Path(pid_file).write_text(str(os.getpid()))
			time.sleep(60)
		if row["n"] in skip:
			raise SkipItem(f"row {row['n']} is a duplicate")
		failing = Path(fail_flag).exists() if fail_flag else ctx.attempt <= fail_attempts
		if row["n"] in fail and failing:
			raise ValueError(f"row {row['n']} has no amount")
		return {"double": 2 * row["n"]}

	return ctx.each(_rows(count), process, key=lambda row: row["id"])


@job_handler("t_items", timeout=60, max_retries=2, base_delay=0, jitter=0, deduplication_window=0)
def t_items(
	ctx,
	marker: str,
	count: int = 10,
	fail: tuple = (),
	fail_attempts: int = 1,
	skip: tuple = (),
	hang_at: int = -1,
	pid_file: str = "",
	delay: float = 0,
):
	return _items_handler(ctx, marker, count, fail, fail_attempts, skip, hang_at, pid_file, delay)


@job_handler("t_items_tolerant", timeout=60, max_retries=0, deduplication_window=0, max_failed_items=1)
def t_items_tolerant(ctx, marker: str, count: int = 5, fail: tuple = (), fail_flag: str = ""):
	return _items_handler(ctx, marker, count, fail, 1, (), -1, "", 0, fail_flag)


@job_handler("t_items_misuse", timeout=30, max_retries=1, base_delay=0, deduplication_window=0)
def t_items_misuse(ctx, misuse: str, count: int = 5):
	"""Items the engine must refuse before writing any: keys that repeat, are empty or too long, an
	item that is not JSON, a one-shot generator; or an item whose result is not JSON."""
	rows = _rows(count)
	key = lambda row: row["id"]  # noqa: E731
	if misuse == "repeated_key":
		key = lambda row: "same" if row["n"] in (1, 3) else row["id"]  # noqa: E731
	elif misuse == "empty_key":
		key = lambda row: "" if row["n"] == 3 else row["id"]  # noqa: E731
	elif misuse == "long_key":
		key = lambda row: "k" * 141 if row["n"] == 3 else row["id"]  # noqa: E731
	elif misuse == "not_json":
		rows[3]["when"] = {1, 2}
	elif misuse == "generator":
		return ctx.each((row for row in rows), lambda row: None, key=key)
	elif misuse == "result_not_json":
		return ctx.each(rows, lambda row: {row["n"]} if row["n"] == 2 else None, key=key)
	return ctx.each(rows, lambda row: None, key=key)


@job_handler("t_fails_after_pause", timeout=30, max_retries=3, base_delay=0, jitter=0, deduplication_window=0)
def t_fails_after_pause(ctx, wait: float = 20):
	"""Never reaches a checkpoint: waits (up to `wait` s) for a pause request, then fails transiently."""
	deadline = time.monotonic() + wait
	while time.monotonic() < deadline:
		if ctx.engine.store.get("Background Job", ctx.job_id).get("pause_requested_at"):
			break
		time.sleep(0.05)
	raise TransientError("upstream unavailable")
