"""Every error the job engine raises, in the groups their catchers need.

- `DartwingError`: what the engine answers its callers (submit, cancel, retry, reads) about
  input, state and access. Callers catch it; each subclass carries the HTTP status and CLI exit
  code it maps to, so the API and the CLI translate it the same way.
- `HandlerFailure` (`TransientError`, `PermanentError`): what a handler raises to classify its
  failed attempt. Not a DartwingError, so code that submits jobs from inside a handler and
  catches DartwingError cannot swallow a classification meant for the executor.
- `UniqueViolation`: a store's internal signal, turned into DuplicateJob by the engine; where it
  escapes, it is a server error, not a caller's mistake.
- `JobInterrupt` is control flow inside a running handler (cancel, timeout); it derives from
  BaseException so a handler's broad `except Exception` cannot swallow it.
"""


class DartwingError(Exception):
	"""Root of the engine's errors."""

	http_status = 500
	exit_code = 1


class ValidationError(DartwingError):
	"""Bad input: names the field and the problem."""

	http_status = 400
	exit_code = 2

	def __init__(self, field: str, problem: str):
		self.field = field
		self.problem = problem
		super().__init__(f"{field}: {problem}")


class PermissionDenied(DartwingError):
	http_status = 403
	exit_code = 5


class NotFound(DartwingError):
	http_status = 404
	exit_code = 4


class InvalidState(DartwingError):
	"""The action is not allowed in the job's current status."""

	http_status = 409
	exit_code = 5


class AlreadyExists(DartwingError):
	"""A record with this name exists already."""

	http_status = 409
	exit_code = 3


class DuplicateJob(AlreadyExists):
	"""An equivalent job exists; names it so the caller can follow that one instead."""

	http_status = 409
	exit_code = 3

	def __init__(self, existing_job: str, existing_status: str):
		self.existing_job = existing_job
		self.existing_status = existing_status
		super().__init__(f"duplicate of job {existing_job} ({existing_status})")


class QueueFull(DartwingError):
	http_status = 429
	exit_code = 5


class RateLimited(DartwingError):
	"""Too many submits from one user or organization this minute; says when to try again."""

	http_status = 429
	exit_code = 5

	def __init__(self, message: str, retry_after: int):
		self.retry_after = retry_after
		super().__init__(f"{message}; retry after {retry_after} s")


class JobFailed(DartwingError):
	"""What waiting for a job raises when it ended without completing (Dead Letter, Canceled):
	its status, error type and message, and the whole job as the API shows it."""

	exit_code = 1

	def __init__(self, job: dict):
		self.job = job
		self.job_id = job["job_id"]
		self.status = job["status"]
		self.error_type = job.get("error_type")
		self.error_message = job.get("error_message")
		reason = self.error_message or (f"canceled by {job['canceled_by']}" if job.get("canceled_by") else "")
		super().__init__(f"job {self.job_id} ended {self.status}" + (f": {reason}" if reason else ""))


class UniqueViolation(Exception):
	"""A store refused a row for a unique index; the engine turns it into DuplicateJob."""


class HandlerFailure(Exception):
	"""Root of what a handler raises to say how its attempt failed."""


class TransientError(HandlerFailure):
	"""Raise from a handler for a failure worth retrying (a dependency was briefly unavailable)."""


class PermanentError(HandlerFailure):
	"""Raise from a handler for a failure no retry can fix (bad input, missing permission)."""


class JobInterrupt(BaseException):
	"""Stops a running handler from outside; not an Exception on purpose (see module docstring)."""


class JobCanceled(JobInterrupt):
	pass


class JobTimedOut(JobInterrupt):
	pass


class JobPaused(JobInterrupt):
	"""A pause was asked for (of the job, or of its job type): the run stops at its checkpoint
	and the job waits, Paused, to be resumed; the attempt is not counted."""


class StepTimedOut(JobTimedOut):
	"""A step (ctx.step) ran past its own timeout: the attempt ends Timed Out, as for the job's."""


class SkipItem(Exception):
	"""Raise from an item's function (ctx.each) to record the item Skipped, with the reason."""


class ItemsFailed(TransientError):
	"""More of ctx.each's items failed than the handler's max_failed_items allow: the attempt
	fails after the other items ran, and a retry runs the failed items again."""
