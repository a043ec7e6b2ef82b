"""Deadlines in the handler's thread: SIGALRM raises an interrupt where the handler is, so even a
handler that never calls checkpoint() stops. Nested deadlines (a step's inside its job's) keep
the earlier one."""

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import JobInterrupt, JobTimedOut


@contextmanager
def deadline(seconds: float, error: Callable[[], JobInterrupt] | None = None) -> Iterator[None]:
	"""Raise `error()` (default JobTimedOut) in the handler after `seconds`, restoring any outer
	alarm (the job's own deadline, or RQ's, set a little longer as a backstop) afterwards. An
	outer alarm due first is left alone: it fires as its own error. Needs the main thread."""
	if not seconds or threading.current_thread() is not threading.main_thread():
		yield
		return
	pending, _ = signal.getitimer(signal.ITIMER_REAL)
	if pending and pending <= seconds:
		yield
		return

	def on_alarm(_signum, _frame):
		raise error() if error is not None else JobTimedOut(f"exceeded its timeout of {seconds}s")

	previous_handler = signal.signal(signal.SIGALRM, on_alarm)
	previous_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
	started = time.monotonic()
	try:
		yield
	finally:
		signal.setitimer(signal.ITIMER_REAL, 0)
		signal.signal(signal.SIGALRM, previous_handler)
		if previous_delay:
			signal.setitimer(signal.ITIMER_REAL, max(0.001, previous_delay - (time.monotonic() - started)))
