"""Dartwing Background Job Engine: the public Python API.

from dartwing.dartwing_core.background_jobs import job_handler, TransientError, PermanentError

Outside workers (a web app, a script): `jobs = connect()`, then `jobs.submit`, `jobs.status`,
`jobs.wait`, `jobs.cancel`.
"""

from collections.abc import Iterable

from .engine import Engine
from .errors import (
	DartwingError,
	DuplicateJob,
	HandlerFailure,
	InvalidState,
	ItemsFailed,
	JobCanceled,
	JobFailed,
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
	"JobFailed",
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
	"connect",
	"job_handler",
	"registry",
]


def connect(
	db_url: str | None = None,
	redis_url: str | None = None,
	*,
	imports: Iterable[str] = (),
	settings: Settings | None = None,
) -> Engine:
	"""The standalone engine for code outside workers, from URLs or else DARTWING_DB_URL and
	DARTWING_REDIS_URL (then the CLI's defaults). Imports the handler modules in `imports` and
	DARTWING_IMPORTS: submit checks parameters against the handler. Imported here, not above, so
	a Frappe site never loads the standalone backend's SQLAlchemy and RQ."""
	from .backends.standalone import build_engine
	from .registry import env_imports, import_handler_modules

	import_handler_modules([*imports, *env_imports()])
	return build_engine(db_url, redis_url, settings)
