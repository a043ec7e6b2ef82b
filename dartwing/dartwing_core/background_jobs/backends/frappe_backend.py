"""The Frappe backend of the engine, assembled: Store over frappe.db (frappe_store.py), Queue over
frappe.enqueue (frappe_queue.py), Events over Frappe's realtime (frappe_events.py), Access over
Frappe users and User Permissions (frappe_access.py). They translate; the engine decides. The
tenancy rules live in dartwing_core/permissions.py, the entry points hooks.py and queue messages
name in dartwing_core/tasks.py."""

from datetime import datetime
from zoneinfo import ZoneInfo

import frappe
from frappe.utils.background_jobs import get_redis_conn

from .. import logs
from ..engine import Engine
from ..errors import ValidationError
from ..registry import env_imports, import_handler_modules
from ..settings import Settings
from . import frappe_notify
from .frappe_access import FrappeAccess
from .frappe_events import FrappeEvents
from .frappe_queue import FrappeQueue
from .frappe_store import FrappeStore

HANDLER_HOOK = "dartwing_job_handlers"


def load_handlers() -> None:
	"""Import every module an installed app lists under the `dartwing_job_handlers` hook, and
	those in DARTWING_IMPORTS (comma-separated), as the standalone commands do."""
	import_handler_modules([*frappe.get_hooks(HANDLER_HOOK), *env_imports()])


def site_settings() -> Settings:
	"""Settings from DARTWING_* variables, overridden by the site config key `dartwing`."""
	overrides = frappe.conf.get("dartwing") or {}
	if not isinstance(overrides, dict):
		raise ValidationError("dartwing", "the site config's dartwing key must be an object of settings")
	site_defaults = {
		"queue_prefix": f"dartwing:{frappe.local.site}",
		"submit_limit_per_user": frappe.conf.get("dartwing_submit_rate_limit") or 300,
		"submit_limit_per_organization": 1200,
		# hooks.py runs the tick every minute: a Job Schedule's interval cannot be shorter.
		"scheduler_interval": 60,
	}
	try:
		return Settings.from_env(**{**site_defaults, **overrides})
	except ValueError as exc:
		raise ValidationError("dartwing", f"site config: {exc}") from None


def get_engine() -> Engine:
	"""The engine of the current site, built once per process and site."""
	site = frappe.local.site
	if site not in _engines:
		load_handlers()
		logs.configure_frappe()
		from frappe.utils import get_system_timezone

		zone = ZoneInfo(get_system_timezone())
		_engines[site] = Engine(
			store=FrappeStore(frappe.local.site, frappe.local.sites_path),
			queue=FrappeQueue(),
			events=FrappeEvents(),
			settings=site_settings(),
			# now_datetime() needs frappe.local, which the heartbeat thread lacks: the same wall
			# clock (the site's zone, naive, as Frappe stores datetimes), readable from any thread.
			clock=lambda: datetime.now(zone).replace(tzinfo=None),
			lock_client=get_redis_conn(),
			access=FrappeAccess(),
			tz=zone,
			on_transition=[frappe_notify.on_transition],
		)
	return _engines[site]


_engines: dict[str, Engine] = {}


# The entry points moved to dartwing_core/tasks.py. Queue messages enqueued before, and the
# Scheduled Job Types a site keeps until its next `bench migrate`, name these paths: still served.
def run_job(background_job: str, message_id: str) -> str:
	from dartwing.dartwing_core.tasks import run_job as run

	return run(background_job, message_id)


def scheduler_tick() -> dict:
	from dartwing.dartwing_core.tasks import scheduler_tick as tick

	return tick()


def purge_daily() -> int:
	from dartwing.dartwing_core.tasks import purge_daily as purge

	return purge()
