"""Engine settings: defaults a demanding user can tune through DARTWING_* environment variables."""

import os
from dataclasses import dataclass, fields

_ZERO_ALLOWED = {"purge_after_days", "submit_limit_per_user", "submit_limit_per_organization"}


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
	# Submits a minute, per user and per organization (0: no limit). The Frappe app sets both.
	submit_limit_per_user: int = 0
	submit_limit_per_organization: int = 0

	@classmethod
	def from_env(cls, environ=os.environ, **overrides) -> "Settings":
		values = {}
		for field in fields(cls):
			raw = environ.get(f"DARTWING_{field.name.upper()}")
			if raw is not None:
				values[field.name] = type(field.default)(raw)
		return cls(**{**values, **overrides})

	def __post_init__(self):
		for field in fields(self):
			value = getattr(self, field.name)
			if not isinstance(value, int | float):
				continue
			if field.name in _ZERO_ALLOWED:
				if not value >= 0:
					raise ValueError(f"DARTWING_{field.name.upper()} must be zero or more, not {value!r}")
			elif not value > 0:
				raise ValueError(f"DARTWING_{field.name.upper()} must be a positive number, not {value!r}")
