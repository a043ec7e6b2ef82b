"""Handlers only the bench tests use; workers import them through DARTWING_IMPORTS."""

import time

import frappe

from dartwing.dartwing_core.background_jobs import PermanentError, TransientError, job_handler


@job_handler("whoami_job", timeout=30, max_retries=0, deduplication_window=0)
def whoami_job(ctx):
	"""Reports the Frappe session user the handler runs as."""
	return {"user": frappe.session.user}


@job_handler("writer_job", timeout=60, max_retries=2, base_delay=30, deduplication_window=0)
def writer_job(
	ctx, note: str, steps: int = 0, delay: float = 0.0, fail: bool = False, uncounted: bool = False
):
	"""Writes a ToDo of its own, then works in steps with progress and checkpoints; may fail.
	`uncounted` writes with REPLACE, a statement Frappe's write counter does not see."""
	if uncounted:
		frappe.db.sql(
			"replace into `tabToDo` (name, description, status) values (%s, %s, 'Open')",
			(frappe.generate_hash(length=10), note),
		)
	else:
		frappe.get_doc({"doctype": "ToDo", "description": note}).insert(ignore_permissions=True)
	for step in range(1, steps + 1):
		ctx.checkpoint()
		time.sleep(delay)
		ctx.progress(100 * step / steps, f"step {step}/{steps}")
	if fail:
		raise TransientError(f"{note}: failed after writing")
	return {"note": note}


@job_handler("hostile_job", timeout=30, max_retries=1, base_delay=600, deduplication_window=0)
def hostile_job(ctx, reason: str, outcome: str = "hostile_ok", keys: list | None = None):
	"""Puts `reason` (markup, in the XSS test) into every field a handler controls; with `keys`,
	also into a step's name and result and into items (keyed by `keys`) that all fail."""
	if keys:
		ctx.step(keys[0], lambda: {"note": reason})

		def refuse(item: str):
			raise PermanentError(reason)

		ctx.each(keys, refuse, key=lambda item: item)
	ctx.progress(50, reason)
	if outcome == "hostile_fail":
		raise TransientError(reason)
	if outcome == "hostile_dead":
		raise PermanentError(reason)
	return {"output_reference": reason, "note": reason}


@job_handler(
	"steps_job",
	timeout=60,
	max_retries=2,
	base_delay=0,
	jitter=0,
	deduplication_window=0,
	steps=["write", "flaky", "finish"],
)
def steps_job(ctx, note: str):
	"""Writes a ToDo in its first step, whose commit keeps it; its second step fails in the
	first attempt. A retry must reuse the first step's result, not write a second ToDo."""

	def write() -> str:
		todo = frappe.get_doc({"doctype": "ToDo", "description": note}).insert(ignore_permissions=True)
		return todo.name

	def flaky() -> int:
		if ctx.attempt == 1:
			raise TransientError(f"{note}: flaky on attempt 1")
		return ctx.attempt

	todo = ctx.step("write", write)
	attempt = ctx.step("flaky", flaky)
	return ctx.step("finish", lambda: {"todo": todo, "flaky_passed_on": attempt})


@job_handler("items_job", timeout=60, max_retries=0, deduplication_window=0, max_failed_items=1)
def items_job(ctx, note: str, count: int = 5, fail_at: int = 2):
	"""Each item writes a ToDo; the item at `fail_at` fails after writing its own, which its
	savepoint must take back while the other items' stay."""

	def process(n: int):
		frappe.get_doc({"doctype": "ToDo", "description": f"{note}-{n}"}).insert(ignore_permissions=True)
		if n == fail_at:
			raise ValueError(f"item {n} refused")
		return {"item_key": ctx.item_key}

	return ctx.each(range(count), process)
