"""Site set-up steps run by hooks.py."""

from dartwing.dartwing_core.background_jobs import admin
from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine


def sync_job_types() -> None:
	"""After every migrate: a Job Type for each handler an app declares and the site lacks."""
	admin.sync_job_types(get_engine())
