"""What a bench worker imports before it forks, so its work-horses do not each import it again.

Frappe's stock `bench worker` forks a work-horse per job from a parent that has imported frappe and
nothing of the apps; every horse then imports this app, its handlers and the parts of Frappe a
job touches (documents, permissions, the database driver) before the job can start. Bench runs
every app's `commands` module in the worker's parent (it collects the apps' commands), so
`dartwing.commands` calls `preload()` there, and Frappe's own `gc.freeze()` that follows keeps
those pages shared with the horses."""

import contextlib
import importlib

# Parts of Frappe every dartwing job touches: the database layer (frappe.connect imports its
# driver), documents and metadata (permissions, the cached System Settings), the query builder.
FRAPPE_MODULES = (
	"frappe.database.mariadb.database",
	"frappe.model.document",
	"frappe.model.meta",
	"frappe.permissions",
	"frappe.query_builder",
	"frappe.realtime",
	"frappe.utils.redis_wrapper",
	"frappe.model.db_query",
	"frappe.database.query",
	"frappe.recorder",
	"frappe.sessions",
	"frappe.translate",
	"frappe.utils.logger",
	"_strptime",
	"encodings.idna",
	"frappe.core.doctype.system_settings.system_settings",
	"frappe.core.doctype.user_permission.user_permission",
	"frappe.utils.response",  # frappe.as_json imports it on first use (realtime events)
	"frappe.boot",  # DatabaseQuery imports it on first use (list queries)
)
ENGINE_MODULES = (
	"dartwing.dartwing_core.background_jobs.backends.frappe_backend",
	"dartwing.dartwing_core.tasks",
	# before_job runs guards.guard_links for every job of the site, a plain Frappe one too: its
	# imports (frappe.client, desk search, the e-mail module) would otherwise cost each horse.
	"dartwing.dartwing_core.guards",
	"dartwing.dartwing_core.background_jobs.executor",
	"dartwing.dartwing_core.background_jobs.scheduler",
	"dartwing.dartwing_core.background_jobs.audit",
)


def preload(sites_path: str = ".") -> list[str]:
	"""Import the engine, Frappe's parts a job touches, and every installed app's handler modules
	(its `dartwing_job_handlers` hook). Returns the handler modules imported. Never fails the
	command it runs in: what cannot be imported here is imported by the horse as before."""
	for name in (*FRAPPE_MODULES, *ENGINE_MODULES):
		with contextlib.suppress(ImportError):
			importlib.import_module(name)
	with contextlib.suppress(ImportError):
		import pytz

		# Builds pytz's zone list (600 file checks, ~7 ms) once, here: Frappe's now_datetime() asks
		# pytz for the site's zone in every horse. Not "UTC", which pytz answers without the list.
		pytz.timezone("Europe/London")
	with contextlib.suppress(ImportError):
		import sqlparse

		# Frappe's query engine formats field names with sqlparse, whose lexer compiles its ~100
		# regular expressions on first use in each process: here, once.
		sqlparse.format("name", strip_comments=True, keyword_case="lower")
	return _import_handler_modules(sites_path)


def _import_handler_modules(sites_path: str) -> list[str]:
	"""What `load_handlers` imports in a horse, read without a site: every app's hook (from its
	hooks module) and DARTWING_IMPORTS."""
	from frappe import get_all_apps

	from ..registry import env_imports, import_handler_modules
	from .frappe_backend import HANDLER_HOOK

	modules = []
	for app in get_all_apps(with_internal_apps=False, sites_path=sites_path):
		with contextlib.suppress(ImportError):
			modules += getattr(importlib.import_module(f"{app}.hooks"), HANDLER_HOOK, [])
	modules += env_imports()
	with contextlib.suppress(Exception):
		import_handler_modules(modules)
	return modules
