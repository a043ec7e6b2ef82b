"""OpenTelemetry spans for submits and attempts, when the app's process has an SDK configured.

Submit opens a PRODUCER span and stores its W3C `traceparent` on the job; each attempt runs in a
CONSUMER span linked to it (a job may run hours later, and several times: a link, not a parent).
Without opentelemetry-api installed, or with only the API (no SDK tracer provider set), every
function here returns at once: one check of the global provider, no span objects."""

import functools
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

try:
	from opentelemetry import trace
	from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the optional extra [otel] is not installed
	trace = None

if TYPE_CHECKING:
	from .executor import Outcome

SYSTEM = "dartwing"
_OFF: AbstractContextManager[None] = nullcontext()
_tracer: tuple[Any, Any] | None = None  # (provider, its tracer), rebuilt when the provider changes
_muted = False  # a worker's warm-up rehearsal is no job: no spans for it


@contextmanager
def muted() -> Iterator[None]:
	"""No spans in this block (the worker's rehearsal of a job, rolled back)."""
	global _muted
	before, _muted = _muted, True
	try:
		yield
	finally:
		_muted = before


def _get_tracer():
	"""The engine's tracer when a real tracer provider is set; None otherwise, so callers skip
	all span work (the API's default provider would hand out non-recording spans, at a cost)."""
	global _tracer
	if trace is None or _muted:
		return None
	provider = trace.get_tracer_provider()
	if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
		return None
	if _tracer is None or _tracer[0] is not provider:
		from dartwing import __version__

		_tracer = (provider, provider.get_tracer("dartwing.jobs", __version__))
	return _tracer[1]


def producing(job_type: str, organization: str | None) -> AbstractContextManager:
	"""The submit's span, current while it runs (so it is the child of the caller's own span); an
	exception that refuses the submit is recorded on it."""
	tracer = _get_tracer()
	if tracer is None:
		return _OFF
	return tracer.start_as_current_span(
		f"submit {job_type}",
		kind=trace.SpanKind.PRODUCER,
		attributes=_attributes(job_type=job_type, organization=organization, operation="publish"),
	)


def producer(submit):
	"""Engine.submit in its producer span (`producing`), current while it runs."""

	@functools.wraps(submit)
	def traced(engine, job_type, organization, *args, **kwargs):
		with producing(job_type, organization):
			return submit(engine, job_type, organization, *args, **kwargs)

	return traced


def traceparent(job: dict) -> str | None:
	"""The W3C traceparent of the submit's span (the current one, inside `producer`), to store on
	the job; the job's fields on the span."""
	if _get_tracer() is None:
		return None
	span = trace.get_current_span()
	span.set_attributes(
		_attributes(job_id=job["name"], priority=job["priority"], organization=job.get("organization"))
	)
	carrier: dict[str, str] = {}
	TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(span))
	return carrier.get("traceparent")


def consuming(job: dict, attempt: int) -> AbstractContextManager:
	"""An attempt's span, linked to its job's submit; current while the handler runs, so the
	handler's own spans (database, HTTP) nest under it."""
	tracer = _get_tracer()
	if tracer is None:
		return _OFF
	links = []
	if job.get("traceparent"):
		context = TraceContextTextMapPropagator().extract({"traceparent": job["traceparent"]})
		submitted = trace.get_current_span(context).get_span_context()
		if submitted.is_valid:
			links.append(trace.Link(submitted))
	return tracer.start_as_current_span(
		f"process {job['job_type']}",
		kind=trace.SpanKind.CONSUMER,
		links=links,
		attributes=_attributes(
			job_id=job["name"],
			job_type=job["job_type"],
			organization=job.get("organization"),
			priority=job.get("priority"),
			attempt=attempt,
			operation="process",
		),
		record_exception=False,  # the attempt records its handler's failure itself
	)


def stepping(name: str, job: dict, attempt: int) -> AbstractContextManager:
	"""A step's span: a child of its attempt's (current while the handler runs); a step that
	raises records the exception and ends in error."""
	tracer = _get_tracer()
	if tracer is None:
		return _OFF
	attributes = _attributes(job_id=job["name"], job_type=job["job_type"], attempt=attempt)
	return tracer.start_as_current_span(f"step {name}", attributes={**attributes, "dartwing.step": name})


def failed(span, exc: BaseException) -> None:
	"""The handler's exception on the attempt's span, which ends in error."""
	if span is not None:
		span.record_exception(exc)
		span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def ended(span, outcome: "Outcome") -> None:
	"""How the attempt ended: Completed, Canceled, Paused, Failed or Timed Out, and the error's class."""
	if span is None:
		return
	failure = outcome.failure
	status = "Timed Out" if failure and failure.timed_out else outcome.status
	span.set_attribute("dartwing.job.outcome", str(status))
	if failure:
		span.set_attribute("dartwing.job.error_type", failure.error_type)


def trace_id(span, job: dict) -> str | None:
	"""The trace id a run's log lines carry: its span's, else (no SDK in this process) the
	submit's, read off the job's traceparent (version-traceid-spanid-flags)."""
	if span is not None:
		context = span.get_span_context()
		if context.is_valid:
			return f"{context.trace_id:032x}"
	parent = job.get("traceparent") or ""
	return parent[3:35] if len(parent) >= 55 else None


def flush(timeout_millis: int = 5000) -> None:
	"""Export the spans a batch processor still holds: a work-horse or a worker's child ends with
	os._exit, which skips the SDK's own flush at exit."""
	if _get_tracer() is not None:
		try:
			trace.get_tracer_provider().force_flush(timeout_millis)
		except Exception:  # tracing must never fail a job or a worker
			logging.getLogger("dartwing.jobs").warning("Exporting spans failed", exc_info=True)


def _attributes(operation: str | None = None, **fields) -> dict:
	"""Messaging semantic-convention names, and the job's own under `dartwing.job.*`."""
	names = {
		"job_id": "dartwing.job.id",
		"job_type": "dartwing.job.type",
		"organization": "dartwing.organization",
		"priority": "dartwing.job.priority",
		"attempt": "dartwing.job.attempt",
	}
	attributes = {  # what a bad submit passed is not an attribute (its error says what it was)
		names[key]: value for key, value in fields.items() if isinstance(value, str | int) and value != ""
	}
	attributes["messaging.system"] = SYSTEM
	if operation:
		attributes["messaging.operation.type"] = operation
	if "dartwing.job.id" in attributes:
		attributes["messaging.message.id"] = attributes["dartwing.job.id"]
	return attributes
