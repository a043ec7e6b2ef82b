"""Engine settings: defaults a demanding user can tune through DARTWING_* environment variables."""

import math
import os
from dataclasses import Field, dataclass, fields

_ZERO_ALLOWED = {
	"purge_after_days",
	"submit_limit_per_user",
	"submit_limit_per_organization",
	"notify_after_seconds",
}


@dataclass(frozen=True)
class Settings:
	lease_seconds: float = 60  # a Running job whose heartbeat is this old is rescued
	cancel_grace_seconds: float = 30  # after a cancel request, a job that ignores checkpoints is killed
	requeue_grace_seconds: float = 30  # a Queued job missing from Redis this long is dispatched again
	checkpoint_interval: float = 0.5  # checkpoint() reads the job row at most this often
	progress_publish_interval: float = 0.25
	progress_persist_interval: float = 2.0
	max_parameter_bytes: int = 65536
	purge_after_days: int = 30
	batch_size: int = 500
	queue_prefix: str = "dartwing"
	scheduler_interval: float = 1.0
	max_items: int = 1_000_000  # items one ctx.each may record
	item_flush_interval: float = 1.0  # item outcomes are written at least this often: a crash redoes them
	# A schedule's run found later than this (or twice the scheduler interval) after its due time
	# was missed (downtime): its misfire policy decides whether it still runs.
	misfire_grace_seconds: float = 60
	# Submits a minute, per user and per organization (0: no limit). The Frappe app sets both.
	submit_limit_per_user: int = 0
	submit_limit_per_organization: int = 0
	# The owner hears of a job that completed after running at least this long (0: never), as of
	# every job that ends in Dead Letter (notices.py; on Frappe, the desk's bell).
	notify_after_seconds: float = 60

	@classmethod
	def from_env(cls, environ=os.environ, **overrides) -> "Settings":
		"""DARTWING_* variables, then `overrides` (on Frappe, the site config's `dartwing` key),
		both coerced to each field's declared type, with errors that name the setting."""
		known = {field.name: field for field in fields(cls)}
		values = {}
		for field in known.values():
			raw = environ.get(f"DARTWING_{field.name.upper()}")
			if raw is not None:
				values[field.name] = _coerce(field, raw, f"DARTWING_{field.name.upper()}")
		for name, raw in overrides.items():
			if name not in known:
				raise ValueError(f"{name} is not a setting (known: {', '.join(sorted(known))})")
			values[name] = _coerce(known[name], raw, name)
		return cls(**values)

	def __post_init__(self):
		for field in fields(self):
			_check_range(field.name, getattr(self, field.name), f"DARTWING_{field.name.upper()}")


def _coerce(field: Field, raw, label: str):
	"""`raw` (text from the environment, or a JSON value from a site config) as the field's type."""
	if field.type is str:
		if not isinstance(raw, str) or not raw:
			raise ValueError(f"{label} must be a non-empty string, not {raw!r}")
		return raw
	try:
		if isinstance(raw, bool):
			raise ValueError
		number = float(raw.strip()) if isinstance(raw, str) else float(raw)
	except (TypeError, ValueError):
		raise ValueError(f"{label} must be a number, not {raw!r}") from None
	if field.type is int:
		if not number.is_integer():
			raise ValueError(f"{label} must be a whole number, not {raw!r}")
		number = int(number)
	_check_range(field.name, number, label)
	return number


def _check_range(name: str, value, label: str) -> None:
	if not isinstance(value, int | float) or isinstance(value, bool):
		return
	if not math.isfinite(value):
		raise ValueError(f"{label} must be a finite number, not {value!r}")
	if name in _ZERO_ALLOWED:
		if not value >= 0:
			raise ValueError(f"{label} must be zero or more, not {value!r}")
	elif not value > 0:
		raise ValueError(f"{label} must be a positive number, not {value!r}")
