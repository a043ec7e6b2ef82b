"""Which failures retry, and when: pure functions of their inputs, no I/O."""

import random
from collections.abc import Callable
from dataclasses import dataclass

from .errors import JobTimedOut, PermanentError, TransientError

TRANSIENT = "Transient"
PERMANENT = "Permanent"
STRATEGIES = ("exponential", "linear", "fixed")

# MariaDB/MySQL error codes: deadlock, lock wait timeout, server gone away, lost connection, too many
# connections. PostgreSQL raises these as named classes (see _TRANSIENT_NAMES).
_TRANSIENT_DB_CODES = {1205, 1213, 2003, 2006, 2013, 1040}
_TRANSIENT_NAMES = {
	"DeadlockDetected",
	"LockNotAvailable",
	"SerializationFailure",
	"QueryDeadlockError",
	"QueryTimeoutError",
	"TooManyConnections",
	"ConnectionError",
	"Timeout",
}
_PERMANENT_NAMES = {"ValidationError", "PermissionError", "DoesNotExistError", "MandatoryError"}


@dataclass(frozen=True)
class RetryPolicy:
	max_retries: int = 5
	strategy: str = "exponential"
	base_delay: float = 60
	max_delay: float = 3600
	jitter: float = 0.1

	JOB_TYPE_FIELDS = ("max_retries", "retry_strategy", "base_delay", "max_delay", "jitter")

	@classmethod
	def from_job_type(cls, job_type: dict, max_retries: int | None = None) -> "RetryPolicy":
		"""The job's own max_retries (fixed at submit) wins over the type's current one."""
		return cls(
			max_retries=job_type["max_retries"] if max_retries is None else max_retries,
			strategy=job_type.get("retry_strategy") or "exponential",
			base_delay=float(job_type.get("base_delay") or 0),
			max_delay=float(job_type.get("max_delay") or 0) or float("inf"),
			jitter=float(job_type.get("jitter") or 0),
		)


def backoff_delay(policy: RetryPolicy, retry_number: int, rand: Callable[[], float] = random.random) -> float:
	"""Seconds to wait before retry number `retry_number` (1 for the first retry)."""
	if policy.strategy == "exponential":
		delay = policy.base_delay * 2.0 ** min(retry_number - 1, 64)  # no float overflow at any count
	elif policy.strategy == "linear":
		delay = policy.base_delay * retry_number
	else:
		delay = policy.base_delay
	delay = min(delay, policy.max_delay)
	# Spread retries of many jobs that failed together by +/- jitter of the delay; never past the cap.
	return min(policy.max_delay, max(0.0, delay * (1 + policy.jitter * (2 * rand() - 1))))


def next_retry_delay(
	policy: RetryPolicy, retries_done: int, error_type: str, rand: Callable[[], float] = random.random
) -> float | None:
	"""Seconds until the next attempt, or None when the job must go to Dead Letter."""
	if error_type == PERMANENT or retries_done >= policy.max_retries:
		return None
	return backoff_delay(policy, retries_done + 1, rand)


def classify(exc: BaseException, retry_on: tuple = (), give_up_on: tuple = ()) -> str:
	"""Transient or Permanent; looks through `raise ... from ...` chains, unknown means Transient.
	At each link, outermost first, the handler's own lists decide before the built-in map:
	`give_up_on` (Permanent), then `retry_on` (Transient), then the map below."""
	seen = set()
	while exc is not None and id(exc) not in seen:
		seen.add(id(exc))
		verdict = (
			PERMANENT
			if give_up_on and isinstance(exc, give_up_on)
			else TRANSIENT
			if retry_on and isinstance(exc, retry_on)
			else _classify_one(exc)
		)
		if verdict:
			return verdict
		exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
	return TRANSIENT


def _classify_one(exc: BaseException) -> str | None:
	if isinstance(exc, PermanentError):
		return PERMANENT
	if isinstance(exc, TransientError | JobTimedOut | MemoryError):
		return TRANSIENT
	status = _http_status(exc)
	if status is not None:
		return TRANSIENT if status == 429 or status >= 500 else PERMANENT if status >= 400 else None
	name = type(exc).__name__
	if name in _PERMANENT_NAMES or isinstance(exc, PermissionError):
		return PERMANENT
	if name in _TRANSIENT_NAMES or isinstance(exc, ConnectionError | TimeoutError):
		return TRANSIENT
	code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
	if code in _TRANSIENT_DB_CODES or name == "OperationalError":
		return TRANSIENT
	if "database is locked" in str(exc) or "deadlock" in str(exc).lower():
		return TRANSIENT
	if isinstance(exc, ValueError | TypeError | LookupError):
		return PERMANENT
	return None


def _http_status(exc: BaseException) -> int | None:
	"""The HTTP status of errors from requests, httpx and urllib, without importing them."""
	for holder in (exc, getattr(exc, "response", None)):
		for attr in ("status_code", "status", "code"):
			value = getattr(holder, attr, None)
			if isinstance(value, int) and 100 <= value <= 599:
				return value
	return None
