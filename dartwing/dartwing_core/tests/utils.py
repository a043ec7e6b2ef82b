"""Shared set-up for the bench tests (`bench --site SITE run-tests --app dartwing`): two
organizations, three kinds of user, real HTTP calls through Frappe's WSGI app, and a real
`bench worker` process. Everything is committed (workers and HTTP calls use their own
connections) and removed again in tearDownClass."""

import json
import os
import subprocess
import sys
import time

import frappe
from frappe.tests.test_api import FrappeAPITestCase, make_request
from frappe.utils import get_bench_path
from frappe.utils.scheduler import disable_scheduler, enable_scheduler, is_scheduler_disabled

from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
from dartwing.dartwing_core.background_jobs.registry import import_handler_modules, registry
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG, STEP

API = "/api/method/dartwing.dartwing_core.api.jobs."
TEST_HANDLERS = "dartwing.dartwing_core.tests.handlers"


class DartwingTestCase(FrappeAPITestCase):
	"""Organizations A and B; users: an admin, a member of A, a member of B, an outsider."""

	@classmethod
	def setUpClass(cls) -> None:
		super().setUpClass()
		tag = frappe.generate_hash(length=6)
		cls.org_a = _organization(f"dw-test-a-{tag}")
		cls.org_b = _organization(f"dw-test-b-{tag}")
		cls.admin = make_user(f"dw-admin-{tag}@example.com", "Dartwing Admin")
		cls.member_a = make_user(f"dw-member-a-{tag}@example.com", "Dartwing User", cls.org_a)
		cls.member_b = make_user(f"dw-member-b-{tag}@example.com", "Dartwing User", cls.org_b)
		cls.outsider = make_user(f"dw-outsider-{tag}@example.com", "Dartwing User")
		cls.engine = get_engine()
		import_handler_modules([TEST_HANDLERS])
		for job_type in ("whoami_job", "writer_job", "hostile_job", "steps_job", "items_job"):
			if not frappe.db.exists("Job Type", job_type):
				row = registry.specs[job_type].as_job_type_row()
				frappe.get_doc({"doctype": "Job Type", **row}).insert()
		# The bench's scheduler would run the cron hook mid-test (and fill the queues the tests'
		# workers drain): the tests run the hook themselves.
		cls.scheduler_was_enabled = not is_scheduler_disabled(verbose=False)
		disable_scheduler()
		frappe.db.commit()
		_drop_queued_ticks()

	@classmethod
	def tearDownClass(cls) -> None:
		frappe.set_user("Administrator")
		frappe.db.rollback()
		orgs = [cls.org_a, cls.org_b]
		frappe.db.delete("Job Schedule", {"organization": ["in", orgs]})
		jobs = frappe.get_all(JOB, filters={"organization": ["in", orgs]}, pluck="name")
		if jobs:
			frappe.db.delete(LOG, {"background_job": ["in", jobs]})
			frappe.db.delete(STEP, {"parent": ["in", jobs]})
			frappe.db.delete("Background Job Item", {"background_job": ["in", jobs]})
			frappe.db.delete(JOB, {"name": ["in", jobs]})
		for user in (cls.admin, cls.member_a, cls.member_b, cls.outsider):
			frappe.db.delete("User Permission", {"user": user["name"]})
			delete_user(user["name"])
		for org in orgs:
			frappe.delete_doc("Organization", org, force=True, ignore_permissions=True)
		if cls.scheduler_was_enabled:
			enable_scheduler()
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self) -> None:
		frappe.set_user("Administrator")

	def tearDown(self) -> None:
		frappe.set_user("Administrator")
		frappe.db.rollback()

	def call(self, method: str, user: dict, http: str = "GET", *, api: str = API, **params):
		"""A real HTTP request through Frappe's app, authenticated with the user's API key, to a
		method of `api` (the job API unless given)."""
		headers = {"Authorization": f"token {user['api_key']}:{user['api_secret']}"}
		if http == "GET":
			query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
			return make_request(
				self.TEST_CLIENT.get, args=(api + method,), kwargs={"query_string": query, "headers": headers}
			)
		return make_request(
			self.TEST_CLIENT.post, args=(api + method,), kwargs={"json": params, "headers": headers}
		)

	def submit_over_http(self, user: dict, organization: str, job_type: str = "sample_job", **parameters):
		"""POST submit_job of a `job_type` with these handler parameters; `priority` and
		`depends_on` go to submit_job itself."""
		body = {key: parameters.pop(key) for key in ("priority", "depends_on") if key in parameters}
		return self.call(
			"submit_job",
			user,
			"POST",
			job_type=job_type,
			organization=organization,
			parameters=parameters,
			**body,
		)

	def submit_as(self, user: dict, job_type: str = "sample_job", organization=None, **params) -> dict:
		frappe.set_user(user["name"])
		try:
			return self.engine.submit(
				job_type, organization or self.org_a, params, user=user["name"], roles=set(frappe.get_roles())
			)
		finally:
			frappe.set_user("Administrator")

	def row(self, job_id: str) -> dict:
		frappe.db.rollback()  # see what other connections committed
		return self.engine.store.get(JOB, job_id)

	def wait_for(self, job_id: str, statuses: set[str], timeout: float = 60) -> dict:
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			row = self.row(job_id)
			if row["status"] in statuses:
				return row
			time.sleep(0.2)
		self.fail(f"job {job_id} stayed {row['status']}, expected one of {sorted(statuses)}")


def _drop_queued_ticks() -> None:
	"""Cron runs the scheduler already queued for this site would otherwise run in our workers."""
	from frappe.utils.background_jobs import get_queue

	for queue_name in ("short", "default", "long"):
		for message in get_queue(queue_name).jobs:
			if message.kwargs.get("site") == frappe.local.site and "scheduler_tick" in str(message.kwargs):
				message.delete()


def _organization(name: str) -> str:
	frappe.get_doc(
		{"doctype": "Organization", "organization_name": name, "status": "Active", "max_queued_jobs": 50}
	).insert(ignore_permissions=True)
	return name


def make_user(email: str, role: str | None, organization: str | None = None) -> dict:
	"""A System User with `role` (None: no role at all) and an API key."""
	user = frappe.get_doc(
		{
			"doctype": "User",
			"email": email,
			"first_name": email.split("@")[0],
			"send_welcome_email": 0,
			"user_type": "System User",
			"roles": [{"role": role}] if role else [],
		}
	).insert(ignore_permissions=True)
	user.api_key = frappe.generate_hash(length=15)
	secret = frappe.generate_hash(length=15)
	user.api_secret = secret
	user.save(ignore_permissions=True)
	if organization:
		frappe.get_doc(
			{"doctype": "User Permission", "user": email, "allow": "Organization", "for_value": organization}
		).insert(ignore_permissions=True)
	return {"name": email, "api_key": user.api_key, "api_secret": secret}


def delete_user(name: str) -> None:
	"""Without User.on_trash, which refuses any delete on a site whose only System Manager is
	Administrator (a fresh site): these users own nothing that it would tidy."""
	frappe.delete_doc("User", name, force=True, ignore_permissions=True, ignore_on_trash=True)


def routed_queues() -> str:
	"""The queues this site sends dartwing jobs to (the `dartwing_*` ones when the bench declares
	them under `workers`), then Frappe's stock ones (the cron hook runs on `default`)."""
	from dartwing.dartwing_core.background_jobs.backends.frappe_queue import FrappeQueue
	from dartwing.dartwing_core.background_jobs.states import PRIORITIES

	queue = FrappeQueue()
	return ",".join(dict.fromkeys([*(queue.queue_for(p) for p in PRIORITIES), "short", "default", "long"]))


def run_bench_worker(queues: str | None = None, timeout: float = 120, **env: str) -> str:
	"""Drain the queues with a real `bench worker --burst` (the frappe CLI bench runs) and return
	its output."""
	worker = start_bench_worker(queues, **env)
	try:
		stdout, stderr = worker.communicate(timeout=timeout)
	finally:
		worker.kill()
	if worker.returncode != 0:
		raise AssertionError(f"bench worker failed ({worker.returncode}):\n{stdout}\n{stderr}")
	return stdout + stderr


def bench_command(*args: str) -> list[str]:
	"""`bench --site SITE ARGS...`, as the bench runs it, in this environment."""
	return [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", frappe.local.site, *args]


SITES_PATH = "sites"


def start_bench_worker(queues: str | None = None, **env: str) -> subprocess.Popen:
	return subprocess.Popen(
		bench_command("worker", "--queue", queues or routed_queues(), "--burst"),
		cwd=os.path.join(get_bench_path(), SITES_PATH),
		stdout=subprocess.PIPE,
		stderr=subprocess.PIPE,
		text=True,
		env={**os.environ, "PYTHONUNBUFFERED": "1", "DARTWING_IMPORTS": TEST_HANDLERS, **env},
	)
