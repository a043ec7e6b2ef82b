"""Every whitelisted method over real HTTP, with its status codes and the tenancy rules, across
two organizations and three kinds of user (admin, member, outsider)."""

import contextlib
import io
import threading

import frappe
from frappe.tests.test_api import make_request

from dartwing.dartwing_core.background_jobs.states import UNFINISHED
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG
from dartwing.dartwing_core.tests.utils import DartwingTestCase, delete_user


class TestJobsAPI(DartwingTestCase):
	def test_submit_returns_the_job_and_writes_it(self):
		response = self.call(
			"submit_job",
			self.member_a,
			"POST",
			job_type="sample_job",
			organization=self.org_a,
			parameters={"steps": 2, "label": "api-submit"},
			priority="High",
		)
		self.assertEqual(response.status_code, 200, response.json)
		job = response.json["message"]
		self.assertEqual(job["status"], "Queued")
		self.assertEqual(job["priority"], "High")
		self.assertEqual(job["owner_user"], self.member_a["name"])
		self.assertEqual(job["triggered_by"], "api")
		self.assertRegex(job["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d$")
		row = self.row(job["job_id"])
		self.assertEqual(row["organization"], self.org_a)
		self.assertEqual(frappe.db.count(LOG, {"background_job": job["job_id"]}), 1)

	def test_submit_bad_input_is_400_and_leaves_no_trace(self):
		before = frappe.db.count(JOB, {"organization": self.org_a})
		cases = [
			({"job_type": "no_such_type"}, "job_type"),
			({"parameters": "[1, 2]"}, "parameters"),
			({"parameters": {"nope": 1}}, "parameters"),
			({"priority": "Urgent"}, "priority"),
			({"depends_on": "0000000000000000"}, "depends_on"),
		]
		for override, field in cases:
			body = {"job_type": "sample_job", "organization": self.org_a, "parameters": {"label": field}}
			body.update(override)
			response = self.call("submit_job", self.member_a, "POST", **body)
			self.assertEqual(response.status_code, 400, (override, response.json))
			self.assertIn(field, response.json["exception"])
		self.assertEqual(frappe.db.count(JOB, {"organization": self.org_a}), before)

	def test_submit_later_is_scheduled_and_bad_times_are_400(self):
		later = self.call(
			"submit_job",
			self.member_a,
			"POST",
			job_type="sample_job",
			organization=self.org_a,
			parameters={"label": "api-later"},
			delay="10m",
		)
		self.assertEqual(later.status_code, 200, later.json)
		job = later.json["message"]
		self.assertEqual(job["status"], "Scheduled")
		self.assertRegex(job["run_at"], r"[+-]\d\d:\d\d$")
		before = frappe.db.count(JOB, {"organization": self.org_a})
		for override, field in [
			({"run_at": "next tuesday"}, "run_at"),
			({"run_at": "2030-01-01 10:00:00"}, "run_at"),  # no offset
			({"run_at": "2099-01-01T00:00:00Z"}, "run_at"),  # more than a year ahead
			({"delay": "soon"}, "delay"),
		]:
			body = {"job_type": "sample_job", "organization": self.org_a, "parameters": {"label": "x"}}
			response = self.call("submit_job", self.member_a, "POST", **body, **override)
			self.assertEqual(response.status_code, 400, (override, response.json))
			self.assertIn(field, response.json["exception"])
		self.assertEqual(frappe.db.count(JOB, {"organization": self.org_a}), before)
		cancel = self.call("cancel_job", self.member_a, "POST", job_id=job["job_id"])
		self.assertEqual(cancel.json["message"]["status"], "Canceled", cancel.json)

	def test_submit_to_an_unknown_organization_is_400(self):
		response = self.call(
			"submit_job", self.admin, "POST", job_type="sample_job", organization="dw-no-such-org"
		)
		self.assertEqual(response.status_code, 400, response.json)
		self.assertIn("organization", response.json["exception"])

	def test_submit_to_another_organization_is_403(self):
		response = self.call(
			"submit_job", self.member_b, "POST", job_type="sample_job", organization=self.org_a
		)
		self.assertEqual(response.status_code, 403, response.json)
		response = self.call(
			"submit_job", self.outsider, "POST", job_type="sample_job", organization=self.org_a
		)
		self.assertEqual(response.status_code, 403, response.json)

	def test_submit_needs_post(self):
		response = self.call(
			"submit_job", self.member_a, "GET", job_type="sample_job", organization=self.org_a
		)
		self.assertEqual(response.status_code, 403, response.json)  # Frappe refuses the method

	def test_duplicate_is_409_and_names_the_existing_job(self):
		first = self.submit_over_http(self.member_a, self.org_a, label="dup").json["message"]
		again = self.submit_over_http(self.member_a, self.org_a, label="dup")
		self.assertEqual(again.status_code, 409, again.json)
		self.assertEqual(again.json["existing_job"], first["job_id"])
		self.assertEqual(again.json["existing_status"], "Queued")

	def test_a_submit_that_loses_a_race_names_the_winner(self):
		"""Two identical submits at once: the unique index refuses the second after the first
		commits, but a web request reads at REPEATABLE READ, from a snapshot taken before, and
		inside its own open transaction. Its answer is still DuplicateJob naming the first (409),
		not a server error."""
		from dartwing.dartwing_core.background_jobs.errors import DuplicateJob

		site, sites_path = frappe.local.site, frappe.local.sites_path
		winner: dict = {}

		def submit_elsewhere():
			frappe.init(site=site, sites_path=sites_path)
			frappe.connect()
			try:
				winner.update(self.engine.submit("sample_job", self.org_a, {"label": "race"}))
				frappe.db.commit()
			finally:
				frappe.destroy()

		frappe.db.commit()
		frappe.db.sql("set session transaction isolation level repeatable read")
		frappe.db._dartwing_read_committed = False  # run_job / read_committed set it again later
		try:
			frappe.db.sql(f"select count(*) from `tab{JOB}`")  # the snapshot, taken before the winner
			# An open write, as a request's: the engine's transaction is then a savepoint in it.
			frappe.db.sql("update `tabUser` set modified = modified where name = 'Guest'")
			thread = threading.Thread(target=submit_elsewhere)
			thread.start()
			thread.join(timeout=30)
			self.assertIn("job_id", winner)
			with self.assertRaises(DuplicateJob) as lost:
				self.engine.submit("sample_job", self.org_a, {"label": "race"})
			self.assertEqual(lost.exception.existing_job, winner["job_id"])
		finally:
			frappe.db.rollback()
			frappe.db.sql("set session transaction isolation level read committed")

	def test_text_no_database_can_hold_is_bad_input_in_every_method(self):
		lone = "\ud800"  # a JSON body may carry one; no UTF-8 column can store it
		for method, field in (
			("get_job_status", "job_id"),
			("cancel_job", "job_id"),
			("get_job_history", "job_id"),
			("get_job_type_parameters", "job_type"),
			("list_jobs", "job_type"),
			("submit_job", "organization"),
		):
			response = self.call(method, self.member_a, "POST", **{"job_type": "sample_job", field: lone})
			with self.subTest(method):
				self.assertEqual(response.status_code, 400, response.get_data(as_text=True)[:300])
				self.assertIn(field, response.get_data(as_text=True))

	def test_full_queue_is_429(self):
		unfinished = frappe.db.count(JOB, {"organization": self.org_b, "status": ["in", list(UNFINISHED)]})
		frappe.db.set_value("Organization", self.org_b, "max_queued_jobs", unfinished + 1)
		frappe.db.commit()
		try:
			ok = self.submit_over_http(self.member_b, self.org_b, label="quota-1")
			self.assertEqual(ok.status_code, 200, ok.json)
			full = self.submit_over_http(self.member_b, self.org_b, label="quota-2")
			self.assertEqual(full.status_code, 429, full.json)
			self.assertIn(f"limit {unfinished + 1}", full.json["exception"])
		finally:
			frappe.db.set_value("Organization", self.org_b, "max_queued_jobs", 50)
			frappe.db.commit()

	def test_status_history_and_unknown_job(self):
		job = self.submit_as(self.member_a, label="status")
		response = self.call("get_job_status", self.member_a, job_id=job["job_id"])
		self.assertEqual(response.status_code, 200, response.json)
		body = response.json["message"]
		for field in (
			"job_id",
			"status",
			"progress",
			"progress_message",
			"retry_count",
			"next_retry_at",
			"error_message",
			"error_type",
			"output_reference",
			"created_at",
			"started_at",
			"completed_at",
		):
			self.assertIn(field, body)
		history = self.call("get_job_history", self.member_a, job_id=job["job_id"])
		self.assertEqual(history.status_code, 200, history.json)
		self.assertTrue(history.json["message"]["chain_valid"])
		self.assertEqual([e["to_status"] for e in history.json["message"]["entries"]], ["Queued"])
		self.assertEqual(
			self.call("get_job_status", self.member_a, job_id="0123456789abcdef").status_code, 404
		)
		self.assertEqual(
			self.call("get_job_history", self.member_a, job_id="0123456789abcdef").status_code, 404
		)

	def test_other_organizations_jobs_are_404_like_absent_ones(self):
		job = self.submit_as(self.member_a, label="private")
		for method in ("get_job_status", "get_job_history"):
			self.assertEqual(self.call(method, self.member_b, job_id=job["job_id"]).status_code, 404)
			self.assertEqual(self.call(method, self.outsider, job_id=job["job_id"]).status_code, 404)
			self.assertEqual(self.call(method, self.admin, job_id=job["job_id"]).status_code, 200)
		self.assertEqual(
			self.call("cancel_job", self.member_b, "POST", job_id=job["job_id"]).status_code, 404
		)

	def test_list_jobs_is_bounded_by_organization(self):
		a = self.submit_as(self.member_a, label="list-a")
		b = self.submit_as(self.member_b, organization=self.org_b, label="list-b")
		seen_by_a = self.call("list_jobs", self.member_a, limit=100).json["message"]
		ids_a = {j["job_id"] for j in seen_by_a["jobs"]}
		self.assertIn(a["job_id"], ids_a)
		self.assertNotIn(b["job_id"], ids_a)
		self.assertEqual({j["organization"] for j in seen_by_a["jobs"]}, {self.org_a})
		self.assertEqual(self.call("list_jobs", self.outsider).json["message"]["total"], 0)
		self.assertEqual(self.call("list_jobs", self.member_a, organization=self.org_b).status_code, 403)
		admin_view = self.call("list_jobs", self.admin, status="Queued", limit=100).json["message"]
		self.assertTrue({a["job_id"], b["job_id"]} <= {j["job_id"] for j in admin_view["jobs"]})
		page = self.call("list_jobs", self.admin, organization=self.org_a, limit=1, offset=0).json["message"]
		self.assertEqual((page["limit"], page["offset"], len(page["jobs"])), (1, 0, 1))
		self.assertEqual(self.call("list_jobs", self.admin, limit=101).status_code, 400)
		self.assertEqual(self.call("list_jobs", self.admin, status="Lost").status_code, 400)
		self.assertEqual(self.call("list_jobs", self.admin, from_date="not a date").status_code, 400)

	def test_list_view_query_is_bounded_too(self):
		a = self.submit_as(self.member_a, label="desk-a")
		b = self.submit_as(self.member_b, organization=self.org_b, label="desk-b")
		frappe.set_user(self.member_a["name"])
		visible = set(frappe.get_list(JOB, pluck="name", limit=500))
		logs = set(
			frappe.get_list(
				LOG, filters={"background_job": ["in", [a["job_id"], b["job_id"]]]}, pluck="background_job"
			)
		)
		self.assertIn(a["job_id"], visible)
		self.assertNotIn(b["job_id"], visible)
		self.assertEqual(logs, {a["job_id"]})
		self.assertTrue(frappe.has_permission(JOB, doc=a["job_id"]))
		with self.assertRaises(frappe.DoesNotExistError):  # elsewhere is absent (guards.py)
			frappe.has_permission(JOB, doc=b["job_id"])
		frappe.set_user(self.outsider["name"])
		self.assertEqual(frappe.get_list(JOB, filters={"name": ["in", [a["job_id"], b["job_id"]]]}), [])

	def test_cancel_by_owner_or_admin_only(self):
		mine = self.submit_as(self.member_a, label="cancel-1")
		response = self.call("cancel_job", self.member_a, "POST", job_id=mine["job_id"])
		self.assertEqual(response.status_code, 200, response.json)
		self.assertEqual(response.json["message"]["status"], "Canceled")
		again = self.call("cancel_job", self.member_a, "POST", job_id=mine["job_id"])
		self.assertEqual(again.status_code, 409, again.json)

		by_admin = self.submit_as(self.member_a, label="cancel-2")
		self.assertEqual(
			self.call("cancel_job", self.admin, "POST", job_id=by_admin["job_id"]).status_code, 200
		)
		self.assertEqual(
			self.call("cancel_job", self.admin, "POST", job_id="0123456789abcdef").status_code, 404
		)

	def test_pause_and_resume_by_owner_or_admin_with_their_statuses(self):
		mine = self.submit_as(self.member_a, label="pause-1")["job_id"]
		paused = self.call("pause_job", self.member_a, "POST", job_id=mine)
		self.assertEqual(paused.status_code, 200, paused.json)
		self.assertEqual(paused.json["message"]["status"], "Paused")
		self.assertEqual(self.call("pause_job", self.member_a, "POST", job_id=mine).status_code, 409)
		self.assertEqual(self.call("resume_job", self.member_b, "POST", job_id=mine).status_code, 404)
		self.assertEqual(self.call("resume_job", self.outsider, "POST", job_id=mine).status_code, 404)
		resumed = self.call("resume_job", self.member_a, "POST", job_id=mine)
		self.assertEqual(resumed.status_code, 200, resumed.json)
		self.assertEqual(resumed.json["message"]["status"], "Queued")
		self.assertEqual(self.call("resume_job", self.member_a, "POST", job_id=mine).status_code, 409)
		self.assertEqual(self.call("pause_job", self.admin, "POST", job_id=mine).status_code, 200)
		self.assertEqual(self.call("pause_job", self.member_a, "POST").status_code, 400)
		self.assertEqual(self.call("pause_job", self.member_a, "GET", job_id=mine).status_code, 403)
		entries = [e["message"] for e in self.engine.history(mine)["entries"]]
		self.assertEqual(
			entries[1:3], [f"Paused by {self.member_a['name']}", f"Resumed by {self.member_a['name']}"]
		)

	def test_job_items_are_read_like_the_job(self):
		job = self.submit_as(self.member_a, label="items")["job_id"]
		page = self.call("get_job_items", self.member_a, job_id=job, status="Failed", limit=5)
		self.assertEqual(page.status_code, 200, page.json)
		self.assertEqual(
			page.json["message"], {"job_id": job, "items": [], "total": 0, "limit": 5, "offset": 0}
		)
		self.assertEqual(
			self.call("get_job_items", self.member_a, job_id=job, status="Done").status_code, 400
		)
		self.assertEqual(self.call("get_job_items", self.member_a, job_id=job, limit="x").status_code, 400)
		self.assertEqual(self.call("get_job_items", self.member_b, job_id=job).status_code, 404)
		retry = self.call("retry_job", self.member_a, "POST", job_id=job, failed_items_only=1)
		self.assertEqual(retry.status_code, 403, retry.json)
		retry = self.call("retry_job", self.admin, "POST", job_id=job, failed_items_only="maybe")
		self.assertEqual(retry.status_code, 400, retry.json)

	def test_pause_job_type_is_for_admins(self):
		self.assertEqual(
			self.call("pause_job_type", self.member_a, "POST", job_type="whoami_job").status_code, 403
		)
		try:
			paused = self.call("pause_job_type", self.admin, "POST", job_type="whoami_job")
			self.assertEqual(paused.status_code, 200, paused.json)
			again = self.call("pause_job_type", self.admin, "POST", job_type="whoami_job")
			self.assertEqual(again.status_code, 409, again.json)
		finally:
			resumed = self.call("pause_job_type", self.admin, "POST", job_type="whoami_job", paused=0)
			self.assertEqual(resumed.status_code, 200, resumed.json)
		self.assertEqual(self.call("pause_job_type", self.admin, "POST", job_type="no_such").status_code, 404)

	def test_retry_is_for_admins_and_finished_jobs(self):
		job = self.submit_as(self.member_a, label="retry")
		self.assertEqual(self.call("retry_job", self.admin, "POST", job_id=job["job_id"]).status_code, 409)
		self.engine.cancel(job["job_id"], user="Administrator")
		self.assertEqual(self.call("retry_job", self.admin, "POST", job_id=job["job_id"]).status_code, 409)

		failed = self.submit_as(self.member_a, job_type="broken_job", reason="retry-2")
		self.row(failed["job_id"])
		from dartwing.dartwing_core.background_jobs import dead_letter

		dead_letter.send(
			self.engine,
			self.row(failed["job_id"]),
			error_type="Permanent",
			error_message="boom",
			actor="test",
		)
		self.assertEqual(
			self.call("retry_job", self.member_a, "POST", job_id=failed["job_id"]).status_code, 403
		)
		response = self.call("retry_job", self.admin, "POST", job_id=failed["job_id"])
		self.assertEqual(response.status_code, 200, response.json)
		self.assertEqual(response.json["message"]["status"], "Queued")
		self.assertEqual(response.json["message"]["retry_count"], 0)

	def test_metrics_for_admins_or_one_accessible_organization(self):
		self.submit_as(self.member_a, label="metrics")
		mine = self.call("get_job_metrics", self.member_a, organization=self.org_a)
		self.assertEqual(mine.status_code, 200, mine.json)
		self.assertGreaterEqual(mine.json["message"]["job_count_by_status"]["Queued"], 1)
		for key in ("queue_depth_by_priority", "processing_time", "failure_rate_by_type"):
			self.assertIn(key, mine.json["message"])
		self.assertEqual(self.call("get_job_metrics", self.member_a).status_code, 403)
		self.assertEqual(
			self.call("get_job_metrics", self.member_a, organization=self.org_b).status_code, 403
		)
		self.assertEqual(self.call("get_job_metrics", self.admin).status_code, 200)

	def test_delete_is_for_admins_and_finished_jobs(self):
		job = self.submit_as(self.member_a, label="delete")
		self.assertEqual(self.call("delete_job", self.admin, "POST", job_id=job["job_id"]).status_code, 409)
		self.engine.cancel(job["job_id"], user="Administrator")
		self.assertEqual(
			self.call("delete_job", self.member_a, "POST", job_id=job["job_id"]).status_code, 403
		)
		response = self.call("delete_job", self.admin, "POST", job_id=job["job_id"])
		self.assertEqual(response.status_code, 200, response.json)
		self.assertIsNone(self.row(job["job_id"]))
		self.assertEqual(frappe.db.count(LOG, {"background_job": job["job_id"]}), 0)

	def test_unauthenticated_calls_are_refused(self):
		response = make_request(
			self.TEST_CLIENT.get, args=("/api/method/dartwing.dartwing_core.api.jobs.list_jobs",)
		)
		self.assertEqual(response.status_code, 403)

	def test_a_user_without_a_dartwing_role_is_refused_everywhere(self):
		from dartwing.dartwing_core.tests.utils import make_user

		job = self.submit_as(self.member_a, label="roleless")
		roleless = make_user(
			f"dw-roleless-{frappe.generate_hash(length=6)}@example.com", "Blogger", self.org_a
		)
		frappe.db.commit()
		try:
			calls = [
				("get_job_status", "GET", {"job_id": job["job_id"]}),
				("get_job_history", "GET", {"job_id": job["job_id"]}),
				("list_jobs", "GET", {}),
				("get_job_metrics", "GET", {"organization": self.org_a}),
				("cancel_job", "POST", {"job_id": job["job_id"]}),
				("submit_job", "POST", {"job_type": "sample_job", "organization": self.org_a}),
			]
			for method, http, params in calls:
				response = self.call(method, roleless, http, **params)
				self.assertEqual(response.status_code, 403, (method, response.json))
		finally:
			frappe.db.delete("User Permission", {"user": roleless["name"]})
			delete_user(roleless["name"])
			frappe.db.commit()

	def test_organizations_are_bounded_too(self):
		frappe.set_user(self.member_a["name"])
		visible = set(frappe.get_list("Organization", pluck="name", limit=500))
		self.assertIn(self.org_a, visible)
		self.assertNotIn(self.org_b, visible)
		with self.assertRaises(frappe.DoesNotExistError):  # elsewhere is absent (guards.py)
			frappe.has_permission("Organization", doc=self.org_b)
		frappe.set_user(self.outsider["name"])
		self.assertEqual(
			frappe.get_list("Organization", filters={"name": ["in", [self.org_a, self.org_b]]}), []
		)

	def test_a_rest_insert_answers_like_submit_job(self):
		path = "/api/resource/Background Job"
		headers = {"Authorization": f"token {self.member_a['api_key']}:{self.member_a['api_secret']}"}
		body = {"job_type": "sample_job", "organization": self.org_a, "input_parameters": '{"label": "rest"}'}
		first = make_request(self.TEST_CLIENT.post, args=(path,), kwargs={"json": body, "headers": headers})
		self.assertEqual(first.status_code, 200, first.json)
		self.assertEqual(first.json["data"]["status"], "Queued")
		bad = {**body, "input_parameters": '{"nope": 1}'}
		printed = io.StringIO()
		with contextlib.redirect_stdout(printed):  # v15 prints a failed REST call's traceback
			again = make_request(
				self.TEST_CLIENT.post, args=(path,), kwargs={"json": body, "headers": headers}
			)
			refused = make_request(
				self.TEST_CLIENT.post, args=(path,), kwargs={"json": bad, "headers": headers}
			)
		self.assertEqual(again.status_code, 409, again.json)
		self.assertEqual(again.json["existing_job"], first.json["data"]["name"])
		self.assertEqual(refused.status_code, 400, refused.json)
		self.assertIn("JobConflictError: duplicate of job", printed.getvalue())
		self.assertIn("JobInputError: parameters: do not fit handler", printed.getvalue())
