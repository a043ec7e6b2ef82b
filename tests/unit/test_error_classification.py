"""Which failures are worth a retry (Transient) and which go straight to Dead Letter (Permanent)."""

import pymysql
import pytest

from dartwing.dartwing_core.background_jobs.errors import (
	JobTimedOut,
	PermanentError,
	TransientError,
	ValidationError,
)
from dartwing.dartwing_core.background_jobs.retry import PERMANENT, TRANSIENT, classify


class HttpError(Exception):
	"""An HTTP client error carrying its status, as requests' and httpx' errors do."""

	def __init__(self, status_code: int):
		super().__init__(f"HTTP {status_code}")
		self.status_code = status_code


class Response:
	def __init__(self, status_code: int):
		self.status_code = status_code


class ResponseError(Exception):
	"""requests.HTTPError style: the status is on `.response`."""

	def __init__(self, status_code: int):
		super().__init__("request failed")
		self.response = Response(status_code)


class DeadlockDetected(Exception):
	"""Named as psycopg names PostgreSQL's deadlock error."""


def chained(outer: BaseException, cause: BaseException) -> BaseException:
	"""`outer` as caught after `raise outer from cause`."""
	try:
		raise outer from cause
	except BaseException as exc:
		return exc


@pytest.mark.parametrize(
	"exc",
	[
		TransientError("upstream busy"),
		ConnectionError("connection refused"),
		ConnectionResetError("reset by peer"),
		TimeoutError("read timed out"),
		JobTimedOut("exceeded its timeout of 30s"),
		MemoryError(),
		HttpError(429),
		HttpError(503),
		HttpError(500),
		ResponseError(429),
		ResponseError(502),
		pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"),
		pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"),
		pymysql.err.OperationalError(2006, "MySQL server has gone away"),
		DeadlockDetected("deadlock detected"),
		RuntimeError("something odd"),
		Exception("no idea"),
	],
	ids=repr,
)
def test_transient_failures_are_retried(exc):
	assert classify(exc) == TRANSIENT


@pytest.mark.parametrize(
	"exc",
	[
		PermanentError("bad input file"),
		ValidationError("parameters", "missing"),
		HttpError(400),
		HttpError(404),
		HttpError(422),
		ResponseError(400),
		ResponseError(404),
		PermissionError("not allowed to read /srv/report.csv"),
		ValueError("not a number"),
		TypeError("unsupported operand"),
		KeyError("customer_id"),
		IndexError("list index out of range"),
	],
	ids=repr,
)
def test_permanent_failures_go_straight_to_dead_letter(exc):
	assert classify(exc) == PERMANENT


def test_an_explicit_transient_error_wins_over_a_permanent_looking_status():
	# Given a handler that says "retry me" although the upstream answered 404
	exc = TransientError("catalogue not published yet")
	exc.status_code = 404

	assert classify(exc) == TRANSIENT


def test_an_explicit_permanent_error_wins_over_a_retryable_status():
	exc = PermanentError("account closed")
	exc.status_code = 503

	assert classify(exc) == PERMANENT


def test_an_unknown_wrapper_is_judged_by_its_cause():
	# Given a handler that wraps library errors in its own RuntimeError
	assert classify(chained(RuntimeError("import failed"), ValueError("bad date"))) == PERMANENT
	assert classify(chained(RuntimeError("import failed"), ConnectionError("refused"))) == TRANSIENT
	assert classify(chained(RuntimeError("import failed"), HttpError(404))) == PERMANENT


def test_a_known_outer_error_decides_over_its_cause():
	assert classify(chained(TransientError("try later"), ValueError("bad date"))) == TRANSIENT
	assert classify(chained(PermanentError("give up"), ConnectionError("refused"))) == PERMANENT


def test_the_cause_is_followed_through_several_unknown_links():
	inner = chained(RuntimeError("step 2"), KeyError("customer_id"))
	assert classify(chained(RuntimeError("step 1"), inner)) == PERMANENT


def test_an_error_raised_while_handling_another_is_judged_by_it_unless_raised_from_none():
	# Given a RuntimeError raised inside `except ValueError:` without `from`
	try:
		try:
			int("twelve")
		except ValueError:
			raise RuntimeError("could not parse the amount") from None
	except RuntimeError as exc:
		suppressed = exc
	try:
		try:
			int("twelve")
		except ValueError:
			raise RuntimeError("could not parse the amount")  # noqa: B904
	except RuntimeError as exc:
		implicit = exc

	# Then the implicit context counts, but `from None` says the ValueError is not the cause
	assert classify(implicit) == PERMANENT
	assert classify(suppressed) == TRANSIENT


def test_a_cycle_in_the_chain_does_not_hang():
	first = RuntimeError("first")
	second = RuntimeError("second")
	first.__cause__ = second
	second.__cause__ = first

	assert classify(first) == TRANSIENT


def test_a_callers_except_dartwing_error_does_not_swallow_a_handlers_classification():
	"""Code that submits jobs from inside a handler catches DartwingError around submit; a
	TransientError or PermanentError raised in that block must still reach the executor, and a
	store's UniqueViolation is not a caller's error."""
	from dartwing.dartwing_core.background_jobs.errors import DartwingError, UniqueViolation

	for raised in (TransientError("flaky"), PermanentError("bad row"), UniqueViolation("dup")):
		with pytest.raises(type(raised)):
			try:
				raise raised
			except DartwingError:
				pass


def test_a_handlers_own_lists_decide_before_the_built_in_map():
	assert classify(KeyError("miss")) == PERMANENT
	assert classify(KeyError("miss"), retry_on=(KeyError,)) == TRANSIENT
	assert classify(ConnectionError("refused"), give_up_on=(OSError,)) == PERMANENT
	# At one link, give_up_on before retry_on; along the chain, the outer link first.
	assert classify(KeyError("x"), retry_on=(KeyError,), give_up_on=(LookupError,)) == PERMANENT
	outer = chained(RuntimeError("wrapped"), KeyError("inner"))
	assert classify(outer, retry_on=(KeyError,)) == TRANSIENT


def test_a_handler_declaring_something_that_is_not_an_exception_class_is_refused():
	from dartwing.dartwing_core.background_jobs import job_handler

	with pytest.raises(ValueError, match="give_up_on must be exception classes"):
		job_handler("t_bad_rules", give_up_on=("KeyError",))
