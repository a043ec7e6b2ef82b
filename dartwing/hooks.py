app_name = "dartwing"
app_title = "Dartwing"
app_publisher = "Dartwing"
app_description = "Guaranteed background jobs for Frappe: retries, dead letters, live progress, audit."
app_email = "dev@dartwing.example"
app_license = "mit"
# No `required_apps = ["frappe"]`: frappe is always installed, and on v15 naming it makes
# install-app look the app up on api.github.com, which fails on a machine without internet access.

# Controllers start with generated `DF` type annotations.
export_python_type_annotations = True

_TASKS = "dartwing.dartwing_core.tasks"
_PERMISSIONS = "dartwing.dartwing_core.permissions"
_SAVED_VIEWS = ("Report", "List Filter", "Dashboard Chart", "Number Card")  # guards.SAVED_VIEWS
_GUARDS = "dartwing.dartwing_core.guards"

# Modules whose @job_handler decorators register handlers. Any app adds its own the same way:
# dartwing_job_handlers = ["myapp.jobs"]
dartwing_job_handlers = ["dartwing.dartwing_core.background_jobs.samples"]

# Due retries, pending releases, orphan rescue, lost-message redispatch, hard stops, due delayed
# jobs and Job Schedules: every minute, each under a Redis lock so any number of bench schedulers act once. Cleanup: daily.
scheduler_events = {
	"cron": {"* * * * *": [f"{_TASKS}.scheduler_tick"]},
	"daily": [f"{_TASKS}.purge_daily"],
}

# Log Settings clears Job Execution Log through its controller's clear_old_logs(days), which purges
# whole finished jobs with their logs, so no hash chain is ever left half-deleted.
default_log_clearing_doctypes = {"Job Execution Log": [30]}

# Declared job types from every installed app's handler modules (existing rows are left alone).
after_migrate = ["dartwing.dartwing_core.install.sync_job_types"]

fixtures = [
	{"dt": "Role", "filters": [["role_name", "in", ["Dartwing User", "Dartwing Admin"]]]},
	{
		"dt": "Job Type",
		"filters": [
			[
				"type_name",
				"in",
				["sample_job", "flaky_job", "broken_job", "slow_job", "long_job", "noop", "import_rows"],
			]
		],
	},
]

permission_query_conditions = {
	"Organization": f"{_PERMISSIONS}.organization_query",
	"Background Job": f"{_PERMISSIONS}.background_job_query",
	"Job Execution Log": f"{_PERMISSIONS}.job_execution_log_query",
	"Background Job Step": f"{_PERMISSIONS}.background_job_step_query",
	"Background Job Item": f"{_PERMISSIONS}.background_job_item_query",
	"Job Schedule": f"{_PERMISSIONS}.job_schedule_query",
	# Files attached to, and tags of, tenant documents; saved views over the tenant doctypes are
	# their owner's (guards.py REFERENCES, SAVED_VIEWS)
	**{doctype: f"{_GUARDS}.reference_query" for doctype in ("File", "Tag Link")},
	**{doctype: f"{_GUARDS}.saved_view_query" for doctype in _SAVED_VIEWS},
}

has_permission = {
	"Organization": f"{_PERMISSIONS}.has_organization_permission",
	"Background Job": f"{_PERMISSIONS}.has_background_job_permission",
	"Job Execution Log": f"{_PERMISSIONS}.has_job_execution_log_permission",
	"Background Job Step": f"{_PERMISSIONS}.has_background_job_step_permission",
	"Background Job Item": f"{_PERMISSIONS}.has_background_job_item_permission",
	"Job Schedule": f"{_PERMISSIONS}.has_job_schedule_permission",
	# Files attached to, and tags of, tenant documents (guards.py)
	"File": f"{_GUARDS}.reference_permission",
	"Tag Link": f"{_GUARDS}.reference_permission",
	**{doctype: f"{_GUARDS}.saved_view_permission" for doctype in _SAVED_VIEWS},
}

# Frappe v15 endpoints that skip or ignore the hooks above, closed for the tenant doctypes
# (guards.py; docs/architecture.md "Tenancy" says what closes what).
override_whitelisted_methods = {
	"frappe.desk.search.search_widget": f"{_GUARDS}.search_widget",
	"frappe.desk.search.search_link": f"{_GUARDS}.search_link",
	"frappe.client.get_count": f"{_GUARDS}.get_count",
	"frappe.client.get": f"{_GUARDS}.get",
	"frappe.client.validate_link": f"{_GUARDS}.validate_link",
	"frappe.desk.doctype.dashboard_chart.dashboard_chart.get": f"{_GUARDS}.dashboard_chart",
	"frappe.desk.listview.get_group_by_count": f"{_GUARDS}.get_group_by_count",
	"frappe.desk.form.utils.get_next": f"{_GUARDS}.get_next",
	"frappe.desk.form.assign_to.add": f"{_GUARDS}.assign_to",
	"frappe.desk.form.document_follow.get_follow_users": f"{_GUARDS}.get_follow_users",
	"frappe.desk.doctype.tag.tag.get_tagged_docs": f"{_GUARDS}.get_tagged_docs",
	"frappe.email.relink": f"{_GUARDS}.relink",
	"frappe.desk.reportview.delete_items": f"{_GUARDS}.delete_items",
	"frappe.utils.file_manager.add_attachments": f"{_GUARDS}.add_attachments",
	"frappe.core.doctype.communication.email.make": f"{_GUARDS}.email_make",
}

doc_events = {
	**{
		doctype: {"validate": f"{_GUARDS}.guard_reference"}
		for doctype in ("File", "Comment", "Communication", "ToDo", "Document Follow", "Tag Link", "Event")
	},
	"DocShare": {"validate": f"{_GUARDS}.guard_share"},
	"Kanban Board": {"validate": f"{_GUARDS}.private_tenant_board"},
}

# Links to a tenant document the user may not reach fail as links to absent ones, in every
# doctype (guards.guard_links, installed once per process before Frappe validates anything).
before_request = [f"{_GUARDS}.guard_links"]
before_job = [f"{_GUARDS}.guard_links"]

# The desk helpers the job list, form and Job Monitor share (dartwing.jobs).
app_include_js = ["/assets/dartwing/js/dartwing_jobs.js"]

# The engine's state rules for the desk's scripts (frappe.boot.dartwing_jobs).
boot_session = "dartwing.dartwing_core.boot.boot_session"

# The Retry-After header of a rate-limited submit (api/errors.py).
after_request = ["dartwing.dartwing_core.api.errors.add_retry_after"]
