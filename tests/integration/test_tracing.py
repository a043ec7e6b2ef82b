"""OpenTelemetry tracing with the real SDK: submit's producer span and the job's traceparent,
each attempt's consumer span linked to it (in this process, then in real worker processes of
both models), the failure recorded; log lines of a run carrying the trace id, as text or JSON."""

import json
import subprocess

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from dartwing.dartwing_core.background_jobs import ValidationError, tracing
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.retry import PERMANENT
from dartwing.dartwing_core.background_jobs.transitions import JOB
from tests.conftest import CLI, FIXTURES, process_env, run_worker_burst


def _set_global_provider(provider) -> None:
	"""The API lets a process set its tracer provider once; tests reset it, as the SDK's own test
	utilities do (opentelemetry.test.globals_test.reset_trace_globals), so other tests run with none."""
	trace._TRACER_PROVIDER_SET_ONCE = Once()
	trace._TRACER_PROVIDER = None
	if provider is not None:
		trace.set_tracer_provider(provider)


@pytest.fixture
def spans():
	"""The SDK configured in this process, its spans kept in memory."""
	exporter = InMemorySpanExporter()
	provider = TracerProvider()
	provider.add_span_processor(SimpleSpanProcessor(exporter))
	_set_global_provider(provider)
	yield exporter
	_set_global_provider(None)


def by_name(exporter, name: str):
	found = [span for span in exporter.get_finished_spans() if span.name == name]
	assert len(found) == 1, [span.name for span in exporter.get_finished_spans()]
	return found[0]


def run_in_process(engine, job_id: str) -> str:
	return execute(engine, job_id, engine.get_job(job_id)["queue_job_id"])


def test_submit_opens_a_producer_span_and_the_attempt_a_consumer_span_linked_to_it(engine, spans):
	tracer = trace.get_tracer("the caller")
	with tracer.start_as_current_span("POST /orders") as request:
		job = engine.submit("t_echo", "Acme", {"value": "traced"}, priority="High")

	producer = by_name(spans, "submit t_echo")
	assert producer.kind == SpanKind.PRODUCER
	assert producer.parent.span_id == request.get_span_context().span_id  # the caller's trace
	assert producer.attributes["dartwing.job.id"] == job["job_id"]
	assert producer.attributes["dartwing.organization"] == "Acme"
	assert producer.attributes["dartwing.job.priority"] == "High"
	context = producer.get_span_context()
	stored = engine.store.get(JOB, job["job_id"])["traceparent"]
	assert stored == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"

	assert run_in_process(engine, job["job_id"]) == "Completed"

	consumer = by_name(spans, "process t_echo")
	assert consumer.kind == SpanKind.CONSUMER
	assert [link.context.span_id for link in consumer.links] == [context.span_id]
	assert consumer.parent is None  # linked, not a child: the job ran apart from the request
	assert dict(consumer.attributes) == {
		"dartwing.job.id": job["job_id"],
		"dartwing.job.type": "t_echo",
		"dartwing.organization": "Acme",
		"dartwing.job.priority": "High",
		"dartwing.job.attempt": 1,
		"dartwing.job.outcome": "Completed",
		"messaging.system": "dartwing",
		"messaging.operation.type": "process",
		"messaging.message.id": job["job_id"],
	}
	assert consumer.status.status_code == StatusCode.UNSET


def test_a_failed_attempt_records_its_exception_on_the_span(engine, spans):
	job = engine.submit("t_value_error", "Acme")

	assert run_in_process(engine, job["job_id"]) == "Dead Letter"

	consumer = by_name(spans, "process t_value_error")
	assert consumer.status.status_code == StatusCode.ERROR
	assert consumer.attributes["dartwing.job.outcome"] == "Failed"
	assert consumer.attributes["dartwing.job.error_type"] == PERMANENT
	[event] = consumer.events
	assert event.name == "exception"
	assert event.attributes["exception.type"] == "ValueError"
	assert event.attributes["exception.message"] == "not a number"


def test_a_timed_out_attempt_says_so(engine, spans):
	job = engine.submit("t_sleep", "Acme", {"seconds": 3})

	run_in_process(engine, job["job_id"])

	consumer = by_name(spans, "process t_sleep")
	assert consumer.attributes["dartwing.job.outcome"] == "Timed Out"
	assert consumer.events[0].attributes["exception.type"].endswith("errors.JobTimedOut")


def test_a_refused_submit_ends_its_span_in_error_and_writes_nothing(engine, spans):
	with pytest.raises(ValidationError):
		engine.submit("t_echo", "Acme", {"no_such_parameter": 1})

	producer = by_name(spans, "submit t_echo")
	assert producer.status.status_code == StatusCode.ERROR
	assert producer.events[0].attributes["exception.type"].endswith("errors.ValidationError")
	assert engine.store.count(JOB) == 0


def test_without_an_sdk_nothing_is_traced_and_no_traceparent_is_stored(engine):
	assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
	job = engine.submit("t_echo", "Acme")

	assert tracing.producing("t_echo", "Acme") is tracing._OFF
	assert run_in_process(engine, job["job_id"]) == "Completed"
	assert engine.store.get(JOB, job["job_id"])["traceparent"] is None


def test_worker_processes_trace_each_attempt_and_log_its_trace_id(engine, spans, worker_model, tmp_path):
	# Given jobs submitted here, under this process's SDK, and workers whose SDK exports to a file
	exported = tmp_path / "spans.jsonl"
	jobs = [engine.submit("t_echo", "Acme", {"value": f"v{n}"}) for n in range(3)]
	submits = {
		span.attributes["dartwing.job.id"]: span.get_span_context()
		for span in spans.get_finished_spans()
		if span.name == "submit t_echo"
	}

	result = run_worker_burst(
		engine,
		env={"DARTWING_IMPORTS": f"{FIXTURES},tests.otel_export", "DARTWING_TEST_SPANS": str(exported)},
	)

	# Then each attempt's span reached the exporter, linked to its job's submit
	consumers = [json.loads(line) for line in exported.read_text().splitlines()]
	assert sorted(s["attributes"]["dartwing.job.id"] for s in consumers) == sorted(submits)
	for span in consumers:
		submitted = submits[span["attributes"]["dartwing.job.id"]]
		assert span["kind"] == "SpanKind.CONSUMER"
		assert [link["context"]["span_id"] for link in span["links"]] == [f"0x{submitted.span_id:016x}"]
		# and the run's log lines carry the attempt's trace id
		trace_id = span["context"]["trace_id"][2:]
		job_id = span["attributes"]["dartwing.job.id"]
		assert f"Job succeeded job_id={job_id}" in result.stderr
		started = next(line for line in result.stderr.splitlines() if f"Job started job_id={job_id}" in line)
		assert started.endswith(f"trace_id={trace_id}")
	assert {job["job_id"] for job in jobs} == set(submits)


def test_json_logs_give_one_object_per_line_with_the_job_fields(engine, spans):
	job = engine.submit("t_echo", "Acme", {"value": "json"})
	submitted = engine.store.get(JOB, job["job_id"])["traceparent"]

	# A worker without an SDK of its own: its lines carry the submit's trace id
	result = run_worker_burst(engine, env={"DARTWING_LOG_FORMAT": "json"})

	lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
	succeeded = next(line for line in lines if line["message"].startswith("Job succeeded"))
	assert succeeded["level"] == "INFO" and succeeded["logger"] == "dartwing.jobs"
	assert succeeded["job_id"] == job["job_id"]
	assert succeeded["job_type"] == "t_echo"
	assert succeeded["organization"] == "Acme"
	assert succeeded["attempt"] == 1
	assert succeeded["trace_id"] == submitted[3:35]
	assert 0 <= succeeded["duration"] < 5


def test_a_bad_log_format_is_refused_naming_the_variable(engine):
	result = subprocess.run(
		[*CLI, "status", "x"],
		env={**process_env(engine), "DARTWING_LOG_FORMAT": "xml"},
		capture_output=True,
		text=True,
		timeout=60,
	)

	assert result.returncode == 2
	assert "DARTWING_LOG_FORMAT: must be text or json, not 'xml'" in result.stderr


def test_steps_are_child_spans_of_their_attempt(engine, spans, tmp_path):
	job = engine.submit("t_steps", "Acme", {"marker": str(tmp_path / "calls"), "fail_in": "classify"})

	assert run_in_process(engine, job["job_id"]) == "Failed"

	attempt, fetch, classify = (by_name(spans, n) for n in ("process t_steps", "step fetch", "step classify"))
	assert fetch.parent.span_id == classify.parent.span_id == attempt.get_span_context().span_id
	assert (fetch.attributes["dartwing.step"], fetch.status.status_code) == ("fetch", StatusCode.UNSET)
	assert classify.status.status_code == StatusCode.ERROR
	assert [event.name for event in classify.events] == ["exception"]
	assert "step file" not in [span.name for span in spans.get_finished_spans()]  # never reached
