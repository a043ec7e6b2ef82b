"""The API's view of rows: the field names every caller (CLI --json, REST, desk) sees."""

import json
from datetime import datetime, timezone, tzinfo

from . import states

_TIMESTAMPS = (
	"queued_at",
	"started_at",
	"completed_at",
	"canceled_at",
	"cancel_requested_at",
	"pause_requested_at",
	"paused_at",
	"next_retry_at",
	"run_at",
)


def iso(value: datetime | None, tz: tzinfo = timezone.utc) -> str | None:
	"""ISO 8601 with its offset. Stores keep naive datetimes in `tz`: UTC standalone, the site's
	time zone on Frappe (so the desk shows them as it shows every other timestamp)."""
	if value is None:
		return None
	if isinstance(value, str):
		value = datetime.fromisoformat(value)
	return value.replace(tzinfo=tz).isoformat()


def _json(value):
	if value in (None, ""):
		return None
	return json.loads(value) if isinstance(value, str) else value


def eta_seconds(job: dict, now: datetime) -> float | None:
	"""Remaining time if the job keeps its pace so far; None until there is a pace to go by."""
	progress = float(job.get("progress") or 0)
	started = job.get("started_at")
	if job.get("status") != states.RUNNING or not started or progress <= 0 or progress >= 100:
		return None
	elapsed = (now - started).total_seconds()
	return round(max(0.0, elapsed * (100 - progress) / progress), 1)


def job_to_api(job: dict, now: datetime, tz: tzinfo = timezone.utc) -> dict:
	out = {
		"job_id": job["name"],
		"job_type": job.get("job_type"),
		"organization": job.get("organization"),
		"status": job.get("status"),
		"priority": job.get("priority"),
		"progress": float(job.get("progress") or 0),
		"progress_message": job.get("progress_message"),
		"eta_seconds": eta_seconds(job, now),
		"retry_count": int(job.get("retry_count") or 0),
		"max_retries": job.get("max_retries"),
		"error_type": job.get("error_type") or None,
		"error_message": job.get("error_message"),
		"output_reference": job.get("output_reference"),
		"result": _json(job.get("result")),
		"parameters": _json(job.get("input_parameters")) or {},
		"depends_on": job.get("depends_on"),
		"owner_user": job.get("owner_user"),
		"triggered_by": job.get("triggered_by"),
		"canceled_by": job.get("canceled_by"),
		"paused_by": job.get("paused_by"),
		"timeout_seconds": job.get("timeout_seconds"),
		"created_at": iso(job.get("creation"), tz),
		"modified_at": iso(job.get("modified"), tz),
		"items": {
			"total": int(job.get("items_total") or 0),
			"done": int(job.get("items_done") or 0),
			"failed": int(job.get("items_failed") or 0),
			"skipped": int(job.get("items_skipped") or 0),
		},
	}
	for field in _TIMESTAMPS:
		out[field] = iso(job.get(field), tz)
	return out


def log_to_api(log: dict, tz: tzinfo = timezone.utc) -> dict:
	return {
		"sequence": log["sequence"],
		"from_status": log.get("from_status"),
		"to_status": log.get("to_status"),
		"timestamp": iso(log.get("timestamp"), tz),
		"actor": log.get("actor"),
		"message": log.get("message"),
		"retry_attempt": log.get("retry_attempt"),
		"entry_hash": log.get("entry_hash"),
	}


def item_to_api(item: dict, tz: tzinfo = timezone.utc) -> dict:
	return {
		"index": item["item_index"],
		"key": item["item_key"],
		"status": item["status"],
		"attempt": item.get("attempt"),
		"completed_at": iso(item.get("completed_at"), tz),
		"result": _json(item.get("result")),
		"error_type": item.get("error_type"),
		"error_message": item.get("error_message"),
	}


def schedule_to_api(
	schedule: dict, tz: tzinfo = timezone.utc, upcoming: list[datetime] | None = None
) -> dict:
	"""A Job Schedule as the API, the CLI and the desk show it."""
	out = {
		"schedule_id": schedule["name"],
		"job_type": schedule.get("job_type"),
		"organization": schedule.get("organization"),
		"parameters": _json(schedule.get("parameters")) or {},
		"cron": schedule.get("cron") or None,
		"interval_seconds": schedule.get("interval_seconds") or None,
		"time_zone": schedule.get("time_zone"),
		"enabled": bool(schedule.get("enabled")),
		"overlap_policy": schedule.get("overlap_policy"),
		"misfire_policy": schedule.get("misfire_policy"),
		"next_run_at": iso(schedule.get("next_run_at"), tz),
		"last_run_at": iso(schedule.get("last_run_at"), tz),
		"last_job": schedule.get("last_job") or None,
		"owner_user": schedule.get("owner_user"),
		"created_at": iso(schedule.get("creation"), tz),
	}
	if upcoming is not None:
		out["upcoming"] = [iso(t, tz) for t in upcoming]
	return out
