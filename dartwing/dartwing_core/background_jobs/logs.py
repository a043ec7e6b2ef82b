"""Log lines of a run carry its job's fields and trace id; DARTWING_LOG_FORMAT=json makes every
line one JSON object (for log shippers), `text` (the default) appends the trace id to the line."""

import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from .errors import ValidationError

FORMATS = ("text", "json")
# The run this context is in: {job_id, job_type, organization, attempt, trace_id}.
_run: contextvars.ContextVar[dict | None] = contextvars.ContextVar("dartwing_run", default=None)
# Record attributes a JSON line carries when a record has them (the executor's `extra` and the run's).
FIELDS = ("job_id", "job_type", "organization", "attempt", "priority", "duration", "trace_id")


@contextmanager
def run_context(job: dict, attempt: int, trace_id: str | None) -> Iterator[None]:
	"""Every record logged in this context (the engine's, the handler's ctx.logger, any library's)
	gets the run's fields, through RunFields on the handlers `configure` sets up."""
	token = _run.set(
		{
			"job_id": job["name"],
			"job_type": job["job_type"],
			"organization": job.get("organization"),
			"attempt": attempt,
			"trace_id": trace_id,
		}
	)
	try:
		yield
	finally:
		_run.reset(token)


class RunFields(logging.Filter):
	"""Adds the current run's fields to a record (those the call did not pass in `extra`)."""

	def filter(self, record: logging.LogRecord) -> bool:
		fields = _run.get()
		if fields:
			for key, value in fields.items():
				if getattr(record, key, None) is None:
					setattr(record, key, value)
		return True


class TextFormatter(logging.Formatter):
	"""The usual line, with ` trace_id=...` at the end of a run's lines that have one."""

	def format(self, record: logging.LogRecord) -> str:
		line = super().format(record)
		trace_id = getattr(record, "trace_id", None)
		return f"{line} trace_id={trace_id}" if trace_id else line


class JsonFormatter(logging.Formatter):
	"""One JSON object per line: time (UTC, ISO 8601), level, logger, message, the job's fields
	and duration when the line has them, and the exception's traceback."""

	def format(self, record: logging.LogRecord) -> str:
		document = {
			"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
			"level": record.levelname,
			"logger": record.name,
			"message": record.getMessage(),
		}
		for key in FIELDS:
			value = getattr(record, key, None)
			if value is not None:
				document[key] = value
		if record.exc_info:
			document["exception"] = self.formatException(record.exc_info)
		return json.dumps(document, default=str, ensure_ascii=False)


def configure(level: str | None = None, log_format: str | None = None) -> None:
	"""The CLI's logging: to stderr, at DARTWING_LOG_LEVEL (INFO), as DARTWING_LOG_FORMAT says."""
	handler = logging.StreamHandler(sys.stderr)
	handler.addFilter(RunFields())
	handler.setFormatter(formatter(log_format))
	logging.basicConfig(level=level or os.environ.get("DARTWING_LOG_LEVEL", "INFO"), handlers=[handler])


def formatter(log_format: str | None = None) -> logging.Formatter:
	"""The formatter DARTWING_LOG_FORMAT (or `log_format`) names."""
	log_format = (log_format or os.environ.get("DARTWING_LOG_FORMAT") or "text").strip().lower()
	if log_format not in FORMATS:
		raise ValidationError("DARTWING_LOG_FORMAT", f"must be text or json, not {log_format!r}")
	if log_format == "json":
		return JsonFormatter()
	return TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")


class FrappeSiteLog(logging.Handler):
	"""On a bench: the engine's records go to the current site's Frappe log files, those
	`frappe.logger("dartwing")` writes (logs/dartwing.log and sites/SITE/logs/dartwing.log), with
	the run's fields and trace id in DARTWING_LOG_FORMAT. One worker process serves many sites, so
	the site is looked up per record; Frappe keeps each site's logger."""

	def __init__(self, log_format: str | None = None):
		super().__init__()
		self.addFilter(RunFields())
		self.setFormatter(formatter(log_format))

	def emit(self, record: logging.LogRecord) -> None:
		import frappe

		# A thread of the worker's own (the heartbeat) has no site: Frappe writes the bench's file alone.
		site_logger = frappe.logger("dartwing")
		for handler in site_logger.handlers:  # its files get our lines as they are
			if handler.formatter is not self.formatter:
				handler.setFormatter(self.formatter)
		site_logger.handle(record)


def configure_frappe() -> None:
	"""Once per process on a bench: the engine's logger writes to the site's Frappe log files at
	DARTWING_LOG_LEVEL (WARNING: a line per job transition would rotate Frappe's small files)."""
	jobs_logger = logging.getLogger("dartwing.jobs")
	if any(isinstance(handler, FrappeSiteLog) for handler in jobs_logger.handlers):
		return
	jobs_logger.addHandler(FrappeSiteLog())
	jobs_logger.setLevel(os.environ.get("DARTWING_LOG_LEVEL", "WARNING").upper())
