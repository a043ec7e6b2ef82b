"""Dartwing Background Job Engine: the public Python API.

from dartwing.dartwing_core.background_jobs import job_handler, TransientError, PermanentError
"""

from .engine import Engine
from .errors import (
	DartwingError,
	DuplicateJob,
	HandlerFailure,
	InvalidState,
	ItemsFailed,
	JobCanceled,
	JobTimedOut,
	NotFound,
	PermanentError,
	PermissionDenied,
	QueueFull,
	RateLimited,
	SkipItem,
	TransientError,
	ValidationError,
)
from .progress import JobContext
from .registry import job_handler, registry
from .settings import Settings

__all__ = [
	"DartwingError",
	"DuplicateJob",
	"Engine",
	"HandlerFailure",
	"InvalidState",
	"ItemsFailed",
	"JobCanceled",
	"JobContext",
	"JobTimedOut",
	"NotFound",
	"PermanentError",
	"PermissionDenied",
	"QueueFull",
	"RateLimited",
	"Settings",
	"SkipItem",
	"TransientError",
	"ValidationError",
	"job_handler",
	"registry",
]
