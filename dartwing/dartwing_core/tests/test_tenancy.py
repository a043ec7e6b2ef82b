"""An attacker's requests against Frappe's own endpoints and the app's API: each must be refused,
or answered the same for a job of another organization ("elsewhere") as for no job at all
("absent"). user1 is member_a (Dartwing User of A), plain a System User with no Dartwing role,
admin2 a Dartwing Admin; the secrets belong to organization B."""

import contextlib
import dataclasses
import io
import json
import time

import frappe
from frappe.tests.test_api import make_request
from frappe.utils.background_jobs import get_redis_connection_without_auth

from dartwing.dartwing_core.background_jobs.backends.frappe_events import _audience_memo, audience
from dartwing.dartwing_core.background_jobs.transitions import ITEM, JOB, LOG, STEP, new_name
from dartwing.dartwing_core.guards import TENANT_DOCTYPES
from dartwing.dartwing_core.tests.utils import DartwingTestCase, delete_user, make_user

SECRET = "globex-secret-7f3a"
ABSENT_JOB = "00000000deadbeef"


class AttackSetUp(DartwingTestCase):
	"""Organization B's secrets, and the three attackers' requests."""

	@classmethod
	def setUpClass(cls) -> None:
		super().setUpClass()
		cls.plain = make_user(f"dw-plain-{frappe.generate_hash(length=6)}@example.com", None)
		frappe.set_user(cls.member_b["name"])
		cls.job_b = cls.engine.submit("sample_job", cls.org_b, {"label": SECRET}, user=cls.member_b["name"])[
			"job_id"
		]
		frappe.set_user("Administrator")
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls) -> None:
		frappe.set_user("Administrator")
		frappe.db.rollback()
		for doctype, field in (("DocShare", "share_name"), ("Comment", "reference_name")):
			frappe.db.delete(doctype, {field: cls.job_b})
		frappe.db.delete("File", {"attached_to_name": cls.job_b})
		delete_user(cls.plain["name"])
		frappe.db.commit()
		super().tearDownClass()

	def http(self, who: dict, verb: str, path: str, headers: dict | None = None, **params):
		headers = {"Authorization": f"token {who['api_key']}:{who['api_secret']}", **(headers or {})}
		if verb in ("GET", "DELETE"):
			query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
			send = self.TEST_CLIENT.get if verb == "GET" else self.TEST_CLIENT.delete
			return make_request(send, args=(path,), kwargs={"query_string": query, "headers": headers})
		return make_request(self.TEST_CLIENT.post, args=(path,), kwargs={"json": params, "headers": headers})

	def _upload(self, user: dict, docname: str, doctype: str = JOB):
		headers = {"Authorization": f"token {user['api_key']}:{user['api_secret']}"}
		data = {"doctype": doctype, "docname": docname, "file": (io.BytesIO(b"hello"), "note.txt")}
		return make_request(
			self.TEST_CLIENT.post,
			args=("/api/method/upload_file",),
			kwargs={"data": data, "headers": headers, "content_type": "multipart/form-data"},
		)

	def assertSameAnswer(self, elsewhere, absent, *, status: int, names=None) -> None:
		"""Elsewhere and absent: one status, one exception type, and no trace of B's data. With
		`names` (elsewhere's, absent's), also the same messages and the same traceback (Frappe
		sends one with non-404 errors; its line numbers would tell two raises apart) once each
		name is put aside."""
		self.assertEqual(elsewhere.status_code, status, elsewhere.get_data(as_text=True)[:500])
		self.assertEqual(absent.status_code, status, absent.get_data(as_text=True)[:500])
		self.assertEqual((elsewhere.json or {}).get("exc_type"), (absent.json or {}).get("exc_type"))
		self.assertNotIn(SECRET, elsewhere.get_data(as_text=True))
		if names:
			said = [
				[
					json.loads(m).get("message")
					for m in json.loads((r.json or {}).get("_server_messages") or "[]")
				]
				for r in (elsewhere, absent)
			]
			self.assertEqual(
				json.dumps(said[0]).replace(names[0], "?"), json.dumps(said[1]).replace(names[1], "?")
			)
			traces = [(r.json or {}).get("exc") or "" for r in (elsewhere, absent)]
			self.assertEqual(traces[0].replace(names[0], "?"), traces[1].replace(names[1], "?"))


class TestTenancyOnFrappeEndpoints(AttackSetUp):
	# -- High 2: search_widget / search_link with ignore_user_permissions ----------------------

	def test_search_with_ignore_user_permissions_stays_in_the_users_organizations(self):
		fields = ["organization", "owner_user", "input_parameters", "error_message", "status", "result"]
		for prefix in ("/api/method/", "/api/v2/method/"):
			for doctype, filters in (
				(JOB, {"organization": self.org_b}),
				(LOG, {"background_job": self.job_b}),
				("Organization", {"name": self.org_b}),
			):
				response = self.http(
					self.member_a,
					"GET",
					prefix + "frappe.desk.search.search_widget",
					doctype=doctype,
					txt="",
					ignore_user_permissions="1",
					as_dict="1",
					filters=filters,
					filter_fields=fields if doctype == JOB else [],
				)
				self.assertEqual(response.status_code, 200, response.json)
				self.assertEqual(response.json.get("message", response.json.get("data")), [], doctype)
			link = self.http(
				self.member_a,
				"GET",
				prefix + "frappe.desk.search.search_link",
				doctype=JOB,
				txt="",
				ignore_user_permissions="1",
				page_length="100",
			)
			self.assertNotIn(self.job_b, link.get_data(as_text=True))
		own = self.http(
			self.member_b,
			"GET",
			"/api/method/frappe.desk.search.search_link",
			doctype=JOB,
			txt=self.job_b,
			ignore_user_permissions="1",
		)
		self.assertIn(self.job_b, own.get_data(as_text=True), "a member still finds their own jobs")

	# -- Medium 3: get_count --------------------------------------------------------------------

	def test_counts_are_of_what_the_user_may_list(self):
		path = "/api/method/frappe.client.get_count"
		for filters in ({"organization": self.org_b}, [[JOB, "input_parameters", "like", f"%{SECRET}%"]]):
			counted = self.http(self.member_a, "GET", path, doctype=JOB, filters=filters)
			self.assertEqual(counted.status_code, 200, counted.json)
			self.assertEqual(counted.json["message"], 0, filters)
			self.assertEqual(
				self.http(self.plain, "GET", path, doctype=JOB, filters=filters).status_code, 403
			)
		own = self.http(self.member_b, "GET", path, doctype=JOB, filters={"organization": self.org_b})
		self.assertGreaterEqual(own.json["message"], 1)

	# -- Medium 4: client.get by filters, and every way to read one document -------------------

	def test_reading_a_job_elsewhere_answers_as_for_an_absent_one(self):
		get = "/api/method/frappe.client.get"
		self.assertSameAnswer(
			self.http(self.member_a, "GET", get, doctype=JOB, filters={"organization": self.org_b}),
			self.http(self.member_a, "GET", get, doctype=JOB, filters={"organization": "dw-no-such-org"}),
			status=404,
		)
		self.assertSameAnswer(
			self.http(self.member_a, "GET", get, doctype=JOB, filters={"name": self.job_b}),
			self.http(self.member_a, "GET", get, doctype=JOB, filters={"name": ABSENT_JOB}),
			status=404,
		)
		for user in (self.member_a, self.plain):
			self.assertSameAnswer(
				self.http(user, "GET", get, doctype=JOB, name=self.job_b),
				self.http(user, "GET", get, doctype=JOB, name=ABSENT_JOB),
				status=404,
			)
			for resource in ("/api/resource/Background Job/", "/api/v2/document/Background Job/"):
				self.assertSameAnswer(
					self.http(user, "GET", resource + self.job_b),
					self.http(user, "GET", resource + ABSENT_JOB),
					status=404,
				)
			getdoc = "/api/method/frappe.desk.form.load.getdoc"
			elsewhere = self.http(user, "GET", getdoc, doctype=JOB, name=self.job_b)
			absent = self.http(user, "GET", getdoc, doctype=JOB, name=ABSENT_JOB)
			self.assertEqual(elsewhere.status_code, absent.status_code)
			self.assertNotIn(SECRET, elsewhere.get_data(as_text=True))
			link = "/api/method/frappe.client.validate_link"
			self.assertEqual(
				self.http(user, "GET", link, doctype=JOB, docname=self.job_b).json,
				self.http(user, "GET", link, doctype=JOB, docname=ABSENT_JOB).json,
			)
		self.assertEqual(
			self.http(self.member_b, "GET", get, doctype=JOB, filters={"name": self.job_b}).status_code, 200
		)

	# -- Medium 5: likes and attachments --------------------------------------------------------

	def test_likes_and_attachments_on_a_job_elsewhere_are_refused(self):
		for user in (self.member_a, self.plain):
			self.assertSameAnswer(
				self.http(
					user,
					"POST",
					"/api/method/frappe.desk.like.toggle_like",
					doctype=JOB,
					name=self.job_b,
					add="Yes",
				),
				self.http(
					user,
					"POST",
					"/api/method/frappe.desk.like.toggle_like",
					doctype=JOB,
					name=ABSENT_JOB,
					add="Yes",
				),
				status=404,
			)
			# upload_file ignores its own check; the File's create permission refuses both alike
			self.assertSameAnswer(self._upload(user, self.job_b), self._upload(user, ABSENT_JOB), status=403)
		frappe.db.rollback()
		self.assertFalse(frappe.db.get_value(JOB, self.job_b, "_liked_by"))
		attackers = [self.member_a["name"], self.plain["name"]]
		self.assertFalse(
			frappe.db.exists("Comment", {"reference_name": self.job_b, "owner": ["in", attackers]})
		)
		self.assertFalse(frappe.db.exists("File", {"attached_to_name": self.job_b}))
		liked = self.http(
			self.member_b,
			"POST",
			"/api/method/frappe.desk.like.toggle_like",
			doctype=JOB,
			name=self.job_b,
			add="Yes",
		)
		self.assertEqual(liked.status_code, 200, "a member may still like their organization's job")

	# -- Medium 6: sharing ----------------------------------------------------------------------

	def test_sharing_never_crosses_organizations(self):
		shared = self.http(
			self.admin,
			"POST",
			"/api/method/frappe.share.add",
			doctype=JOB,
			name=self.job_b,
			user=self.member_a["name"],
			read=1,
		)
		self.assertEqual(shared.status_code, 403, shared.json)
		everyone = self.http(
			self.admin,
			"POST",
			"/api/method/frappe.share.add",
			doctype=JOB,
			name=self.job_b,
			everyone=1,
			read=1,
		)
		self.assertEqual(everyone.status_code, 403, everyone.json)
		frappe.db.rollback()
		self.assertFalse(frappe.db.exists("DocShare", {"share_name": self.job_b}))
		status = self.call("get_job_status", self.member_a, job_id=self.job_b)
		self.assertEqual(status.status_code, 404)
		within = self.http(
			self.admin,
			"POST",
			"/api/method/frappe.share.add",
			doctype=JOB,
			name=self.job_b,
			user=self.member_b["name"],
			read=1,
		)
		self.assertEqual(within.status_code, 200, "sharing inside the organization still works")

	def test_a_share_made_before_the_guard_grants_nothing(self):
		"""A DocShare row written past the guard (as the old code allowed) opens no read path; the
		patch drops it, and one left over from a job deleted since."""
		for job in (self.job_b, ABSENT_JOB):
			frappe.get_doc(
				{
					"doctype": "DocShare",
					"share_doctype": JOB,
					"share_name": job,
					"user": self.member_a["name"],
					"read": 1,
				}
			).db_insert()
		frappe.db.commit()
		try:
			self.assertEqual(self.call("get_job_status", self.member_a, job_id=self.job_b).status_code, 404)
			self.assertEqual(
				self.http(self.member_a, "GET", "/api/resource/Background Job/" + self.job_b).status_code, 404
			)
			from dartwing.patches.drop_cross_organization_shares import execute

			execute()
			for job in (self.job_b, ABSENT_JOB):
				self.assertFalse(
					frappe.db.exists("DocShare", {"share_name": job, "user": self.member_a["name"]})
				)
		finally:
			frappe.db.delete("DocShare", {"share_name": ["in", [self.job_b, ABSENT_JOB]]})
			frappe.db.commit()

	# -- Medium 7: the submit rate limit --------------------------------------------------------

	def test_submits_are_limited_per_user_on_every_path_with_retry_after(self):
		engine = self.engine
		saved = engine.settings
		engine.settings = dataclasses.replace(saved, submit_limit_per_user=3)
		self._clear_counters()
		try:
			for n in range(3):
				self.assertEqual(
					self.submit_over_http(self.member_a, self.org_a, label=f"rl-{n}").status_code, 200
				)
			for path in ("/api/method/", "/api/v2/method/"):
				limited = self.http(
					self.member_a,
					"POST",
					path + "dartwing.dartwing_core.api.jobs.submit_job",
					headers={"X-Forwarded-For": "1.2.3.4"},
					job_type="sample_job",
					organization=self.org_a,
					parameters={"label": "rl-over"},
				)
				self.assertEqual(limited.status_code, 429, limited.json)
				self.assertTrue(1 <= int(limited.headers["Retry-After"]) <= 61, limited.headers)
			other = self.submit_over_http(self.member_b, self.org_b, label="rl-other")
			self.assertEqual(other.status_code, 200, "another user behind the same address is not blocked")
		finally:
			engine.settings = saved
			self._clear_counters()

	def test_submits_are_limited_per_organization(self):
		engine = self.engine
		saved = engine.settings
		engine.settings = dataclasses.replace(saved, submit_limit_per_organization=2)
		self._clear_counters()
		try:
			self.assertEqual(self.submit_over_http(self.member_a, self.org_a, label="org-1").status_code, 200)
			self.assertEqual(self.submit_over_http(self.admin, self.org_a, label="org-2").status_code, 200)
			self.assertEqual(self.submit_over_http(self.admin, self.org_a, label="org-3").status_code, 429)
			self.assertEqual(self.submit_over_http(self.admin, self.org_b, label="org-b").status_code, 200)
		finally:
			engine.settings = saved
			self._clear_counters()

	def _clear_counters(self) -> None:
		client = self.engine.lock_client
		for key in client.scan_iter(f"{self.engine.settings.queue_prefix}:submits:*"):
			client.delete(key)

	# -- Medium 8: Critical is reserved ---------------------------------------------------------

	def test_critical_is_reserved_to_the_roles_the_job_type_names(self):
		response = self.submit_over_http(self.member_a, self.org_a, label="crit-user", priority="Critical")
		self.assertEqual(response.status_code, 403, response.json)
		self.assertIn("Critical", response.json["exception"])
		admin = self.submit_over_http(self.admin, self.org_a, label="crit-admin", priority="Critical")
		self.assertEqual(admin.status_code, 200, admin.json)
		frappe.db.set_value("Job Type", "sample_job", "critical_roles", "Dartwing User")
		frappe.db.commit()
		try:
			allowed = self.submit_over_http(
				self.member_a, self.org_a, label="crit-granted", priority="Critical"
			)
			self.assertEqual(allowed.status_code, 200, allowed.json)
		finally:
			frappe.db.set_value("Job Type", "sample_job", "critical_roles", None)
			frappe.db.commit()

	def test_an_organization_at_its_in_flight_limit_waits_its_turn(self):
		from dartwing.dartwing_core.background_jobs.executor import execute

		frappe.db.set_value("Organization", self.org_a, "max_in_flight_jobs", 1)
		frappe.db.commit()
		try:
			first = self.submit_over_http(self.member_a, self.org_a, label="flight-1").json["message"]
			second = self.submit_over_http(self.member_a, self.org_a, label="flight-2").json["message"]
			other = self.submit_over_http(self.member_b, self.org_b, label="flight-b").json["message"]
			self.assertEqual(
				[first["status"], second["status"], other["status"]], ["Queued", "Pending", "Queued"]
			)
			row = self.row(first["job_id"])
			execute(self.engine, row["name"], row["queue_job_id"])
			frappe.db.commit()
			self.assertEqual(self.row(second["job_id"])["status"], "Queued")
		finally:
			frappe.db.set_value("Organization", self.org_a, "max_in_flight_jobs", 0)
			frappe.db.commit()

	# -- Low 9: job type spellings --------------------------------------------------------------

	def test_job_type_spellings_are_the_same_job_type(self):
		first = self.submit_over_http(self.member_a, self.org_a, label="spelling")
		self.assertEqual(first.status_code, 200, first.json)
		for spelling in ("SAMPLE_JOB", "Sample_Job", "sample_job "):
			again = self.submit_over_http(self.member_a, self.org_a, job_type=spelling, label="spelling")
			self.assertEqual(again.status_code, 409, (spelling, again.json))
			self.assertEqual(again.json["existing_job"], first.json["message"]["job_id"])
		nul = self.submit_over_http(self.member_a, self.org_a, job_type="sample_job\x00", label="spelling")
		self.assertEqual(nul.status_code, 400, nul.json)
		self.assertIn("job_type", nul.json["exception"])
		other = self.submit_over_http(self.member_a, self.org_a, job_type="SAMPLE_JOB", label="spelling-2")
		self.assertEqual(self.row(other.json["message"]["job_id"])["job_type"], "sample_job")

	# -- Low 10: bad text is a 400 naming the field ---------------------------------------------

	def test_bad_text_is_a_400_naming_the_field_never_a_500(self):
		before = frappe.db.count(JOB, {"organization": self.org_a})
		cases = [
			(
				"submit_job",
				"POST",
				{"job_type": "sample_job", "organization": self.org_a, "parameters": {"label": "\ud800"}},
				"parameters",
			),
			("submit_job", "POST", {"job_type": "sample_\ud800", "organization": self.org_a}, "job_type"),
			("submit_job", "POST", {"job_type": "sample_job"}, "organization"),
			("submit_job", "POST", {"organization": self.org_a}, "job_type"),
			("list_jobs", "GET", {"offset": "99999999999999999999999"}, "offset"),
			("get_job_status", "GET", {}, "job_id"),
		]
		for method, verb, params, field in cases:
			response = self.call(method, self.member_a, verb, **params)
			self.assertEqual(
				response.status_code, 400, (method, params, response.get_data(as_text=True)[:300])
			)
			self.assertIn(field, response.json["exception"])
			self.assertEqual(response.json["exc_type"], "JobInputError")
		frappe.db.rollback()
		self.assertEqual(frappe.db.count(JOB, {"organization": self.org_a}), before)

	# -- Low 11: ids through the API and realtime -----------------------------------------------

	def test_the_api_answers_the_same_for_elsewhere_and_absent(self):
		for method in ("get_job_status", "get_job_history"):
			self.assertSameAnswer(
				self.call(method, self.member_a, job_id=self.job_b),
				self.call(method, self.member_a, job_id=ABSENT_JOB),
				status=404,
			)
		depends = [
			self.submit_over_http(self.member_a, self.org_a, label="dep", depends_on=job)
			for job in (self.job_b, ABSENT_JOB)
		]
		self.assertSameAnswer(*depends, status=400, names=(self.job_b, ABSENT_JOB))
		# REST inserts validate links before permissions: the same "Could not find" for both
		printed = io.StringIO()
		with contextlib.redirect_stdout(printed):  # v15 prints a failed REST call's traceback
			inserts = [
				self.http(
					self.member_a,
					"POST",
					"/api/resource/Background Job",
					job_type="sample_job",
					organization=self.org_a,
					input_parameters='{"label": "rest-dep"}',
					depends_on=job,
				)
				for job in (self.job_b, ABSENT_JOB)
			]
		self.assertSameAnswer(*inserts, status=417)
		self.assertIn("LinkValidationError", printed.getvalue())

	def test_list_updates_reach_only_users_who_may_see_the_job(self):
		frappe.cache.delete_keys("dartwing:audience:")
		_audience_memo.clear()
		self.assertIn(self.member_b["name"], audience(self.org_b))
		self.assertIn(self.admin["name"], audience(self.org_b))
		self.assertNotIn(self.member_a["name"], audience(self.org_b))
		self.assertNotIn(self.plain["name"], audience(self.org_b))
		pubsub = get_redis_connection_without_auth().pubsub()  # where Frappe publishes "events"
		pubsub.subscribe("events")
		try:
			pubsub.get_message(timeout=1)  # the subscribe confirmation
			job = self.submit_over_http(self.member_b, self.org_b, label="realtime").json["message"]["job_id"]
			rooms, deadline = [], time.monotonic() + 5
			while time.monotonic() < deadline:
				message = pubsub.get_message(timeout=0.5)
				if message and message["type"] == "message":
					event = json.loads(message["data"])
					if event.get("event") == "list_update" and job in json.dumps(event.get("message")):
						rooms.append(event["room"])
				elif rooms:
					break
		finally:
			pubsub.close()
		expected = {f"user:{user}" for user in audience(self.org_b)}
		self.assertTrue(rooms, "the submit published a list update")
		self.assertEqual(set(rooms), expected)
		self.assertNotIn(f"user:{self.member_a['name']}", rooms)

	def test_every_tenant_doctype_is_guarded(self):
		from dartwing.dartwing_core.guards import TenantDocument

		for doctype in TENANT_DOCTYPES:
			self.assertTrue(
				issubclass(frappe.get_doc({"doctype": doctype}).__class__, TenantDocument), doctype
			)

	def test_every_doctype_with_a_tenancy_rule_is_a_tenant_doctype(self):
		"""A doctype permissions.py limits to organizations is one guards.py closes Frappe's own
		endpoints for: a new one (a job's steps and items were) must not be left out."""
		ruled = {
			doctype
			for doctype, methods in frappe.get_hooks("permission_query_conditions").items()
			if any(m.startswith("dartwing.dartwing_core.permissions.") for m in methods)
		} | {
			doctype
			for doctype, methods in frappe.get_hooks("has_permission").items()
			if any(m.startswith("dartwing.dartwing_core.permissions.") for m in methods)
		}
		self.assertEqual(ruled, set(TENANT_DOCTYPES))


class TestTenancyOnFrappeSideDoors(AttackSetUp):
	"""The second round: documents of other doctypes that point at a tenant document (files,
	assignments, follows, tags, communications), and endpoints that compute over rows unchecked."""

	M = "/api/method/"

	@classmethod
	def setUpClass(cls) -> None:
		super().setUpClass()
		from frappe.desk.doctype.tag.tag import add_tag

		cls.todo_b = frappe.get_doc(
			{
				"doctype": "ToDo",
				"description": "globex assignment",
				"allocated_to": cls.member_b["name"],
				"reference_type": JOB,
				"reference_name": cls.job_b,
			}
		).insert(ignore_permissions=True)
		cls.file_b = frappe.get_doc(
			{
				"doctype": "File",
				"file_name": f"{SECRET}.txt",
				"content": SECRET,
				"is_private": 1,
				"attached_to_doctype": JOB,
				"attached_to_name": cls.job_b,
			}
		).insert(ignore_permissions=True)
		add_tag("dw-globex-tag", JOB, cls.job_b)
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls) -> None:
		frappe.set_user("Administrator")
		frappe.db.rollback()
		for doctype, field in (
			("ToDo", "reference_name"),
			("Tag Link", "document_name"),
			("Document Follow", "ref_docname"),
		):
			frappe.db.delete(doctype, {field: cls.job_b})
		frappe.delete_doc("File", cls.file_b.name, force=True, ignore_permissions=True)
		frappe.db.commit()
		super().tearDownClass()

	def test_no_one_points_their_documents_at_a_job_elsewhere(self):
		own = self.http(
			self.member_a,
			"POST",
			self.M + "frappe.client.insert",
			doc={"doctype": "ToDo", "description": "mine", "allocated_to": self.member_a["name"]},
		)
		self.assertEqual(own.status_code, 200, own.json)
		repoint = {"reference_type": JOB, "reference_name": self.job_b}
		for target in (self.job_b, ABSENT_JOB):
			moved = self.http(
				self.member_a,
				"POST",
				self.M + "frappe.client.set_value",
				doctype="ToDo",
				name=own.json["message"]["name"],
				fieldname={**repoint, "reference_name": target},
			)
			self.assertIn(moved.status_code, (404, 417), moved.json)
		follow = self.http(
			self.member_a,
			"POST",
			self.M + "frappe.client.insert",
			doc={
				"doctype": "Document Follow",
				"ref_doctype": JOB,
				"ref_docname": self.job_b,
				"user": self.member_a["name"],
			},
		)
		self.assertEqual(follow.status_code, 417, follow.json)  # "Could not find", as for an absent job
		frappe.db.rollback()
		self.assertFalse(frappe.db.exists("Document Follow", {"ref_docname": self.job_b}))

	def test_a_link_to_a_job_elsewhere_fails_as_a_link_to_an_absent_one(self):
		"""Frappe checks links before permissions and hooks: the answer (417 "Could not find")
		and its words must not depend on whether the job exists in another organization."""
		docs = {
			"ToDo": lambda job: {
				"doctype": "ToDo",
				"description": "x",
				"allocated_to": self.member_a["name"],
				"reference_type": JOB,
				"reference_name": job,
			},
			"Document Follow": lambda job: {
				"doctype": "Document Follow",
				"ref_doctype": JOB,
				"ref_docname": job,
				"user": self.member_a["name"],
			},
			"Tag Link": lambda job: {
				"doctype": "Tag Link",
				"document_type": JOB,
				"document_name": job,
				"tag": "dw-globex-tag",
			},
			"Comment": lambda job: {
				"doctype": "Comment",
				"comment_type": "Comment",
				"reference_doctype": JOB,
				"reference_name": job,
				"content": "x",
			},
			"Event": lambda job: {
				"doctype": "Event",
				"subject": "x",
				"starts_on": "2026-12-06 10:00:00",
				"event_participants": [{"reference_doctype": JOB, "reference_docname": job}],
			},
			"Communication": lambda job: {
				"doctype": "Communication",
				"subject": "x",
				"communication_medium": "Other",
				"timeline_links": [{"link_doctype": JOB, "link_name": job}],
			},
			# Found by a second probe: any doctype's Dynamic Link (Frappe's own and other apps').
			"Reminder": lambda job: {
				"doctype": "Reminder",
				"remind_at": "2099-01-01 10:00:00",
				"description": "x",
				"reminder_doctype": JOB,
				"reminder_docname": job,
			},
			"Auto Repeat": lambda job: {
				"doctype": "Auto Repeat",
				"reference_doctype": JOB,
				"reference_document": job,
				"frequency": "Daily",
				"start_date": "2099-01-01",
			},
			"Contact": lambda job: {
				"doctype": "Contact",
				"first_name": "x",
				"links": [{"link_doctype": JOB, "link_name": job}],
			},
			"Address": lambda job: {
				"doctype": "Address",
				"address_title": "x",
				"address_line1": "x",
				"city": "x",
				"links": [{"link_doctype": JOB, "link_name": job}],
			},
		}
		for doctype, doc in docs.items():
			for user in (self.member_a, self.plain):
				with self.subTest(doctype=doctype, user=user["name"]):
					elsewhere, absent = (
						self.http(user, "POST", self.M + "frappe.client.insert", doc=doc(job))
						for job in (self.job_b, ABSENT_JOB)
					)
					self.assertSameAnswer(elsewhere, absent, status=417, names=(self.job_b, ABSENT_JOB))
		# Two links, one absent: the message lists them in field order whichever the other is.
		for user in (self.member_a, self.plain):
			with contextlib.redirect_stdout(io.StringIO()):  # v15 prints a failed REST call's traceback
				elsewhere, absent = [
					self.http(
						user,
						"POST",
						"/api/resource/Background Job",
						job_type="sample_job",
						organization=org,
						depends_on=ABSENT_JOB,
					)
					for org in (self.org_b, "dw-no-such-org")
				]
			self.assertSameAnswer(elsewhere, absent, status=417, names=(self.org_b, "dw-no-such-org"))
		# An organization's name, through the Reminder's Dynamic Link
		for user in (self.member_a, self.plain):
			elsewhere, absent = (
				self.http(
					user,
					"POST",
					self.M + "frappe.client.insert",
					doc={**docs["Reminder"](org), "reminder_doctype": "Organization"},
				)
				for org in (self.org_b, "dw-no-such-org")
			)
			self.assertSameAnswer(elsewhere, absent, status=417, names=(self.org_b, "dw-no-such-org"))
		frappe.db.rollback()
		self.assertFalse(frappe.db.exists("ToDo", {"reference_name": self.job_b, "description": "x"}))
		self.assertFalse(frappe.db.exists("Comment", {"reference_name": self.job_b, "content": "x"}))
		self.assertFalse(frappe.db.exists("Communication Link", {"link_name": self.job_b}))
		self.assertFalse(frappe.db.exists("Event Participants", {"reference_docname": self.job_b}))

	def test_saved_views_over_jobs_are_their_owners(self):
		"""A report, a sidebar filter, a dashboard chart or a number card over a tenant doctype keeps
		filter values (a job id, an organization, parameter text): others may not read it."""
		unique = frappe.generate_hash(length=6)
		views = {
			"Report": {
				"report_name": f"dw-report-{unique}",
				"ref_doctype": JOB,
				"report_type": "Report Builder",
				"is_standard": "No",
			},
			"List Filter": {"reference_doctype": JOB, "filter_name": f"dw-filter-{unique}"},
			"Dashboard Chart": {
				"chart_name": f"dw-chart-{unique}",
				"document_type": JOB,
				"chart_type": "Count",
				"type": "Line",
				"based_on": "creation",
			},
			"Number Card": {"document_type": JOB, "function": "Count", "label": f"dw-card-{unique}"},
		}
		made = []
		try:
			for doctype, values in views.items():
				frappe.set_user(self.member_b["name"])
				doc = frappe.get_doc(
					{
						"doctype": doctype,
						"filters_json": json.dumps([[JOB, "organization", "=", self.org_b]]),
						"json": json.dumps({"filters": [[JOB, "input_parameters", "like", f"%{SECRET}%"]]}),
						**values,
					}
				).insert(ignore_permissions=True)
				made.append((doctype, doc.name))
				frappe.set_user("Administrator")
				frappe.db.commit()
				with self.subTest(doctype):
					listed = self.http(
						self.member_a,
						"GET",
						self.M + "frappe.client.get_list",
						doctype=doctype,
						fields=["*"],
						limit_page_length=500,
					)
					self.assertNotIn(doc.name, listed.get_data(as_text=True))
					self.assertNotIn(SECRET, listed.get_data(as_text=True))
					printed = io.StringIO()
					with contextlib.redirect_stdout(printed):  # v15 prints a refused REST read's traceback
						read = self.http(self.member_a, "GET", f"/api/resource/{doctype}/{doc.name}")
					self.assertIn("PermissionError", printed.getvalue())
					self.assertNotIn(SECRET, read.get_data(as_text=True))
					self.assertIn(read.status_code, (403, 404))
					mine = self.http(self.member_b, "GET", f"/api/resource/{doctype}/{doc.name}")
					self.assertEqual(mine.status_code, 200, mine.get_data(as_text=True)[:300])
		finally:
			frappe.set_user("Administrator")
			frappe.db.rollback()
			for doctype, name in made:
				frappe.delete_doc(doctype, name, force=True, ignore_permissions=True)
			frappe.db.commit()

	def test_a_kanban_board_over_jobs_is_private(self):
		"""Its columns keep the ids of cards moved on it: a public one showed them to everyone."""
		board = self.http(
			self.member_a,
			"POST",
			self.M + "frappe.desk.doctype.kanban_board.kanban_board.quick_kanban_board",
			doctype=JOB,
			board_name=f"dw-board-{frappe.generate_hash(length=6)}",
			field_name="status",
		)
		self.assertEqual(board.status_code, 200, board.get_data(as_text=True)[:300])
		frappe.db.rollback()
		name = board.json["message"]["name"]
		try:
			self.assertEqual(frappe.db.get_value("Kanban Board", name, "private"), 1)
			# One made public before the guard: the patch makes it its creator's.
			from dartwing.patches.make_tenant_kanban_boards_private import execute

			frappe.db.set_value("Kanban Board", name, "private", 0)
			execute()
			self.assertEqual(frappe.db.get_value("Kanban Board", name, "private"), 1)
		finally:
			frappe.delete_doc("Kanban Board", name, force=True, ignore_permissions=True)
			frappe.db.commit()

	def test_deleting_a_job_elsewhere_answers_as_for_an_absent_one(self):
		for user in (self.member_a, self.plain):
			for verb, path, params in (
				("DELETE", "/api/resource/{doctype}/{name}", {}),
				("DELETE", "/api/v2/document/{doctype}/{name}/", {}),
				("POST", self.M + "frappe.client.delete", {"doctype": "{doctype}", "name": "{name}"}),
			):
				with self.subTest(user=user["name"], path=path):
					elsewhere, absent = (
						self.http(
							user,
							verb,
							path.format(doctype=JOB, name=job),
							**{k: v.format(doctype=JOB, name=job) for k, v in params.items()},
						)
						for job in (self.job_b, ABSENT_JOB)
					)
					self.assertSameAnswer(elsewhere, absent, status=404, names=(self.job_b, ABSENT_JOB))
			elsewhere, absent = (
				self.http(
					user,
					"POST",
					self.M + "frappe.desk.reportview.delete_items",
					doctype=JOB,
					items=json.dumps([job]),
				)
				for job in (self.job_b, ABSENT_JOB)
			)
			self.assertSameAnswer(elsewhere, absent, status=200, names=(self.job_b, ABSENT_JOB))
		frappe.db.rollback()
		self.assertTrue(frappe.db.exists(JOB, self.job_b))

	def test_files_and_tags_of_a_job_elsewhere_are_not_listed_nor_reopened(self):
		files = self.http(
			self.member_a,
			"GET",
			self.M + "frappe.client.get_list",
			doctype="File",
			fields=["name", "attached_to_name"],
			limit_page_length=500,
		)
		self.assertNotIn(self.job_b, files.get_data(as_text=True))
		copy = self.http(
			self.member_a,
			"POST",
			self.M + "frappe.client.insert",
			doc={"doctype": "File", "file_url": self.file_b.file_url, "is_private": 1},
		)
		self.assertEqual(copy.status_code, 403, copy.get_data(as_text=True)[:300])
		# A guessed URL: the same answer whether a file is there or not, and no job named.
		for user in (self.member_a, self.plain):
			there, absent = (
				self.http(
					user,
					"POST",
					self.M + "frappe.client.insert",
					doc={"doctype": "File", "file_url": url, "is_private": 1},
				)
				for url in (self.file_b.file_url, "/private/files/dw-no-such-file.txt")
			)
			self.assertSameAnswer(
				there, absent, status=403, names=(self.file_b.file_url, "/private/files/dw-no-such-file.txt")
			)
			self.assertNotIn(self.job_b, there.get_data(as_text=True))
		# add_attachments inserts its copies with ignore_permissions: the rule still holds.
		own = frappe.get_doc(
			{"doctype": "ToDo", "description": "mine", "allocated_to": self.member_a["name"]}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		copied = self.http(
			self.member_a,
			"POST",
			self.M + "frappe.utils.file_manager.add_attachments",
			doctype="ToDo",
			name=own.name,
			attachments=json.dumps([self.file_b.name]),
		)
		self.assertEqual(copied.status_code, 403, copied.get_data(as_text=True)[:300])
		mailed = self.http(
			self.member_a,
			"POST",
			self.M + "frappe.core.doctype.communication.email.make",
			doctype="ToDo",
			name=own.name,
			content="see attached",
			subject="dw-copy",
			recipients=self.member_a["name"],
			send_email=0,
			attachments=json.dumps([self.file_b.name]),
		)
		self.assertEqual(mailed.status_code, 403, mailed.get_data(as_text=True)[:300])
		frappe.db.rollback()
		self.assertFalse(frappe.db.exists("File", {"attached_to_name": own.name}))
		self.assertFalse(frappe.db.exists("Communication", {"subject": "dw-copy"}))
		frappe.delete_doc("ToDo", own.name, force=True, ignore_permissions=True)
		frappe.db.commit()
		tags = self.http(
			self.member_a,
			"GET",
			self.M + "frappe.client.get_list",
			doctype="Tag Link",
			fields=["document_name"],
			limit_page_length=500,
		)
		self.assertNotIn(self.job_b, tags.get_data(as_text=True))
		tagged = self.http(
			self.member_a, "GET", self.M + "frappe.desk.doctype.tag.tag.get_tagged_docs", doctype=JOB, tag="%"
		)
		self.assertNotIn(self.job_b, tagged.get_data(as_text=True))
		own_view = self.http(
			self.member_b,
			"GET",
			self.M + "frappe.client.get_list",
			doctype="File",
			fields=["attached_to_name"],
			limit_page_length=500,
		)
		self.assertIn(self.job_b, own_view.get_data(as_text=True), "a member still lists their job's files")

	def test_computed_answers_do_not_cross_organizations(self):
		chart = {
			"document_type": JOB,
			"type": "Heatmap",
			"chart_type": "Sum",
			"based_on": "creation",
			"value_based_on": "ord(substring(input_parameters from 1 for 1))",
			"filters_json": json.dumps([[JOB, "name", "=", self.job_b, False]]),
		}
		for user in (self.member_a, self.plain):
			heat = self.http(
				user,
				"POST",
				self.M + "frappe.desk.doctype.dashboard_chart.dashboard_chart.get",
				chart=chart,
				no_cache=1,
			)
			self.assertEqual(heat.status_code, 403, heat.get_data(as_text=True)[:300])
		# Another spelling of the doctype is the same doctype; a list is bad input, not a 500.
		for document_type, status in (("background job ", 403), ([JOB], 417)):
			odd = self.http(
				self.member_a,
				"POST",
				self.M + "frappe.desk.doctype.dashboard_chart.dashboard_chart.get",
				chart={**chart, "document_type": document_type},
				no_cache=1,
			)
			self.assertEqual(odd.status_code, status, odd.get_data(as_text=True)[:300])
		for target in (self.job_b, ABSENT_JOB):
			groups = self.http(
				self.member_a,
				"GET",
				self.M + "frappe.desk.listview.get_group_by_count",
				doctype=JOB,
				current_filters=[[JOB, "name", "=", target]],
				field="assigned_to",
			)
			self.assertEqual(groups.json.get("message"), [], (target, groups.get_data(as_text=True)[:400]))
		self.assertEqual(
			self.http(
				self.member_a,
				"GET",
				self.M + "frappe.desk.form.utils.get_next",
				doctype=JOB,
				value=self.job_b,
				prev=0,
			).json.get("message"),
			self.http(
				self.member_a,
				"GET",
				self.M + "frappe.desk.form.utils.get_next",
				doctype=JOB,
				value=ABSENT_JOB,
				prev=0,
			).json.get("message"),
		)
		self.assertSameAnswer(
			self.http(
				self.member_a,
				"POST",
				self.M + "frappe.desk.form.assign_to.add",
				doctype=JOB,
				name=self.job_b,
				assign_to="[]",
			),
			self.http(
				self.member_a,
				"POST",
				self.M + "frappe.desk.form.assign_to.add",
				doctype=JOB,
				name=ABSENT_JOB,
				assign_to="[]",
			),
			status=404,
		)
		self.assertNotIn(
			self.member_b["name"],
			self.http(
				self.member_a,
				"GET",
				self.M + "frappe.desk.form.document_follow.get_follow_users",
				doctype=JOB,
				doc_name=self.job_b,
			).get_data(as_text=True),
		)


ABSENT_STEP = "00000000deadbeef0001"
ABSENT_ITEM = f"{ABSENT_JOB}-0"


class TestTenancyOfStepsAndItems(AttackSetUp):
	"""A job's steps (a child table of Background Job) and items (a doctype of their own) hold its
	results: Frappe's own endpoints answer for another organization's as for absent ones."""

	M = "/api/method/"

	@classmethod
	def setUpClass(cls) -> None:
		super().setUpClass()
		result = json.dumps({"rows": SECRET})
		cls.step_b = new_name()
		frappe.get_doc(
			{
				"doctype": STEP,
				"name": cls.step_b,
				"parent": cls.job_b,
				"parenttype": JOB,
				"parentfield": "steps",
				"step_name": "fetch",
				"step_order": 1,
				"status": "Completed",
				"attempt": 1,
				"result": result,
			}
		).db_insert()
		cls.item_b = f"{cls.job_b}-0"
		frappe.get_doc(
			{
				"doctype": ITEM,
				"name": cls.item_b,
				"background_job": cls.job_b,
				"item_index": 0,
				"item_key": "0",
				"status": "Completed",
				"attempt": 1,
				"result": result,
			}
		).db_insert()
		cls.file_b = frappe.get_doc(
			{
				"doctype": "File",
				"file_name": f"{SECRET}-item.txt",
				"content": SECRET,
				"is_private": 1,
				"attached_to_doctype": ITEM,
				"attached_to_name": cls.item_b,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls) -> None:
		frappe.set_user("Administrator")
		frappe.db.rollback()
		frappe.delete_doc("File", cls.file_b.name, force=True, ignore_permissions=True)
		for doctype, field in (("ToDo", "reference_name"), ("Comment", "reference_name")):
			frappe.db.delete(doctype, {field: ["in", [cls.step_b, cls.item_b]]})
		frappe.db.commit()
		super().tearDownClass()  # the job's steps and items go with it

	def rows(self):
		"""(doctype, row of B, absent name, the field naming the job, the `parent` a read names)"""
		return (
			(STEP, self.step_b, ABSENT_STEP, "parent", {"parent": JOB}),
			(ITEM, self.item_b, ABSENT_ITEM, "background_job", {}),
		)

	def test_steps_and_items_elsewhere_are_not_counted(self):
		path = self.M + "frappe.client.get_count"
		for doctype, _row, _absent, job_field, _parent in self.rows():
			for filters in ({job_field: self.job_b}, [[doctype, "result", "like", f"%{SECRET}%"]]):
				with self.subTest(doctype=doctype, filters=filters):
					counted = self.http(self.member_a, "GET", path, doctype=doctype, filters=filters)
					self.assertEqual(counted.status_code, 200, counted.get_data(as_text=True)[:300])
					self.assertEqual(counted.json["message"], 0)
					plain = self.http(self.plain, "GET", path, doctype=doctype, filters=filters)
					self.assertEqual(plain.status_code, 403, plain.get_data(as_text=True)[:300])
					own = self.http(self.member_b, "GET", path, doctype=doctype, filters=filters)
					self.assertEqual(own.json["message"], 1, "a member still counts their job's rows")

	def test_steps_and_items_elsewhere_are_not_found_by_search(self):
		for doctype, _row, _absent, job_field, _parent in self.rows():
			for prefix in ("/api/method/", "/api/v2/method/"):
				with self.subTest(doctype=doctype, prefix=prefix):
					found = self.http(
						self.member_a,
						"GET",
						prefix + "frappe.desk.search.search_widget",
						doctype=doctype,
						txt="",
						ignore_user_permissions="1",
						as_dict="1",
						reference_doctype=JOB,
						filters={job_field: self.job_b},
						filter_fields=["result"],
					)
					self.assertNotIn(SECRET, found.get_data(as_text=True))
					self.assertNotIn(self.job_b, found.get_data(as_text=True))
					if found.status_code == 200:  # a child table is searched for no one (403)
						self.assertEqual(found.json.get("message", found.json.get("data")), [])
					else:
						self.assertEqual(found.status_code, 403, found.get_data(as_text=True)[:300])

	def test_reading_a_step_or_item_elsewhere_answers_as_for_an_absent_one(self):
		get = self.M + "frappe.client.get"
		for doctype, row, absent, job_field, parent in self.rows():
			for user in (self.member_a, self.plain):
				with self.subTest(doctype=doctype, user=user["name"]):
					# Frappe asks a child table's reader for its parent doctype first: 403 to a
					# user who reads no jobs, before any row is looked at
					status = 403 if parent and user is self.plain else 404
					self.assertSameAnswer(
						self.http(user, "GET", get, doctype=doctype, name=row, **parent),
						self.http(user, "GET", get, doctype=doctype, name=absent, **parent),
						status=status,
					)
					for resource in (f"/api/resource/{doctype}/", f"/api/v2/document/{doctype}/"):
						self.assertSameAnswer(
							self.http(user, "GET", resource + row),
							self.http(user, "GET", resource + absent),
							status=404,
						)
					getdoc = self.M + "frappe.desk.form.load.getdoc"
					elsewhere = self.http(user, "GET", getdoc, doctype=doctype, name=row)
					nowhere = self.http(user, "GET", getdoc, doctype=doctype, name=absent)
					self.assertEqual(elsewhere.status_code, nowhere.status_code)
					self.assertNotIn(SECRET, elsewhere.get_data(as_text=True))
					link = self.M + "frappe.client.validate_link"
					self.assertEqual(
						self.http(user, "GET", link, doctype=doctype, docname=row).json,
						self.http(user, "GET", link, doctype=doctype, docname=absent).json,
					)
			with self.subTest(doctype=doctype, by="filters"):
				self.assertSameAnswer(
					self.http(
						self.member_a, "GET", get, doctype=doctype, filters={job_field: self.job_b}, **parent
					),
					self.http(
						self.member_a, "GET", get, doctype=doctype, filters={job_field: ABSENT_JOB}, **parent
					),
					status=404,
				)
			own = self.http(self.member_b, "GET", get, doctype=doctype, name=row, **parent)
			self.assertEqual(own.status_code, 200, own.get_data(as_text=True)[:300])
			self.assertIn(SECRET, own.get_data(as_text=True), "a member still reads their job's rows")

	def test_no_one_points_their_documents_at_a_step_or_item_elsewhere(self):
		for doctype, row, absent, _field, _parent in self.rows():
			for user in (self.member_a, self.plain):
				with self.subTest(doctype=doctype, user=user["name"]):
					todo = {"doctype": "ToDo", "description": "x", "allocated_to": user["name"]}
					elsewhere, nowhere = (
						self.http(
							user,
							"POST",
							self.M + "frappe.client.insert",
							doc={**todo, "reference_type": doctype, "reference_name": name},
						)
						for name in (row, absent)
					)
					self.assertSameAnswer(elsewhere, nowhere, status=417, names=(row, absent))
					# upload_file's File: its create permission refuses both alike
					self.assertSameAnswer(
						self._upload(user, row, doctype), self._upload(user, absent, doctype), status=403
					)
		frappe.db.rollback()
		for name in (self.step_b, self.item_b):
			self.assertFalse(frappe.db.exists("ToDo", {"reference_name": name}))
			self.assertFalse(
				frappe.db.exists("File", {"attached_to_name": name, "name": ["!=", self.file_b.name]})
			)

	def test_files_of_an_item_elsewhere_are_not_listed(self):
		listed = {
			who: self.http(
				user,
				"GET",
				self.M + "frappe.client.get_list",
				doctype="File",
				fields=["name", "file_name", "attached_to_name"],
				limit_page_length=500,
			).get_data(as_text=True)
			for who, user in (("a", self.member_a), ("b", self.member_b))
		}
		self.assertNotIn(self.item_b, listed["a"])
		self.assertNotIn(SECRET, listed["a"])
		self.assertIn(self.item_b, listed["b"], "a member still lists their job's item's files")
