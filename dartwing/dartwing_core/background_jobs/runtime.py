"""The engine of this process. A worker or scheduler configures it once; code that runs inside
them (queue messages, periodic tasks) asks for it here instead of building its own."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
	from .engine import Engine

_engine: "Engine | None" = None
# Set in a supervised child that runs jobs in its own process (prefork.py): a run whose lease is no
# longer its own (canceled by force, rescued after a lapse) ends the process with this exit code,
# as a forking worker kills such a run's work-horse.
lost_lease_exit_code: int | None = None


def configure(engine: "Engine") -> None:
	global _engine
	_engine = engine


def current() -> "Engine":
	"""The configured engine, or a standalone one built from DARTWING_* environment variables."""
	global _engine
	if _engine is None:
		from .backends.standalone import build_engine

		_engine = build_engine()
	return _engine
