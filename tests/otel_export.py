"""Imported by worker processes in the tracing tests (DARTWING_IMPORTS): configures the
OpenTelemetry SDK the way an application would, with a batch processor (so the engine's flush
before a process ends is what exports), writing each span as one JSON line to DARTWING_TEST_SPANS."""

import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

_path = os.environ.get("DARTWING_TEST_SPANS")
if _path:
	provider = TracerProvider()
	exporter = ConsoleSpanExporter(
		out=open(_path, "a"),  # kept open for the process's life
		formatter=lambda span: span.to_json(indent=None) + "\n",
	)
	# A long delay: spans leave the process only through a flush, never by the timer.
	provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
	trace.set_tracer_provider(provider)
