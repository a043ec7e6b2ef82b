"""Job Schedule on a site: the engine's rules on desk/REST saves, the API over real HTTP with its
statuses and tenancy, and the per-minute cron hook creating each due job once."""

import frappe

from dartwing.dartwing_core.background_jobs.schedules import SCHEDULE
from dartwing.dartwing_core.background_jobs.transitions import JOB
from dartwing.dartwing_core.tasks import scheduler_tick
from dartwing.dartwing_core.tests.utils import DartwingTestCase

SCHEDULES = "/api/method/dartwing.dartwing_core.api.schedules."


class TestJobSchedule(DartwingTestCase):
	def schedule_call(self, method: str, user: dict, http: str = "GET", **params):
		return self.call(method, user, http, api=SCHEDULES, **params)

	def add_over_http(self, user: dict, organization: str, **values):
		body = {
			"job_type": "sample_job",
			"organization": organization,
			"parameters": {"label": "schedule"},
			"cron": "*/5 * * * *",
			**values,
		}
		return self.schedule_call("add_schedule", user, "POST", **body)

	def count(self) -> int:
		frappe.db.rollback()
		return frappe.db.count(SCHEDULE, {"organization": ["in", [self.org_a, self.org_b]]})

	def test_add_returns_the_schedule_with_its_next_five_runs(self):
		response = self.add_over_http(self.member_a, self.org_a, time_zone="Europe/Paris")
		self.assertEqual(response.status_code, 200, response.json)
		schedule = response.json["message"]
		self.assertEqual(schedule["owner_user"], self.member_a["name"])
		self.assertEqual(len(schedule["upcoming"]), 5)
		self.assertEqual(schedule["next_run_at"], schedule["upcoming"][0])
		self.assertEqual(schedule["time_zone"], "Europe/Paris")

	def test_bad_schedules_are_400_naming_the_field_and_write_nothing(self):
		before = self.count()
		cases = [
			({"cron": "0 0 30 2 *"}, "cron"),
			({"cron": "not a cron"}, "cron"),
			({"time_zone": "Mars/Olympus"}, "time_zone"),
			({"cron": "", "interval_seconds": 30}, "interval_seconds"),  # the bench ticks each minute
			({"parameters": {"no_such_argument": 1}}, "parameters"),
			({"job_type": "no_such_type"}, "job_type"),
			({"overlap_policy": "Sometimes"}, "overlap_policy"),
		]
		for override, field in cases:
			response = self.add_over_http(self.member_a, self.org_a, **override)
			self.assertEqual(response.status_code, 400, (override, response.json))
			self.assertIn(field, response.json["exception"])
		self.assertEqual(self.count(), before)

	def test_a_disabled_job_type_is_refused(self):
		frappe.db.set_value("Job Type", "whoami_job", "is_enabled", 0)
		frappe.db.commit()
		try:
			response = self.add_over_http(self.admin, self.org_a, job_type="whoami_job", parameters={})
			self.assertEqual(response.status_code, 400, response.json)
			self.assertIn("disabled", response.json["exception"])
		finally:
			frappe.db.set_value("Job Type", "whoami_job", "is_enabled", 1)
			frappe.db.commit()

	def test_tenancy_other_organizations_are_403_and_404(self):
		self.assertEqual(self.add_over_http(self.member_b, self.org_a).status_code, 403)
		mine = self.add_over_http(self.member_a, self.org_a).json["message"]["schedule_id"]
		self.assertEqual(self.schedule_call("get_schedule", self.member_b, schedule_id=mine).status_code, 404)
		self.assertEqual(
			self.schedule_call("pause_schedule", self.outsider, "POST", schedule_id=mine).status_code, 404
		)
		listed = self.schedule_call("list_schedules", self.member_b).json["message"]["schedules"]
		self.assertNotIn(mine, [s["schedule_id"] for s in listed])
		listed = self.schedule_call("list_schedules", self.admin).json["message"]["schedules"]
		self.assertIn(mine, [s["schedule_id"] for s in listed])
		frappe.set_user(self.member_b["name"])
		self.assertNotIn(mine, frappe.get_list(SCHEDULE, pluck="name"))

	def test_only_the_owner_or_an_admin_changes_a_schedule(self):
		schedule = self.add_over_http(self.member_a, self.org_a).json["message"]["schedule_id"]
		paused = self.schedule_call("pause_schedule", self.member_a, "POST", schedule_id=schedule)
		self.assertEqual(paused.status_code, 200, paused.json)
		self.assertFalse(paused.json["message"]["enabled"])
		self.assertIsNone(paused.json["message"]["next_run_at"])
		resumed = self.schedule_call("resume_schedule", self.admin, "POST", schedule_id=schedule)  # anyone's
		self.assertTrue(resumed.json["message"]["enabled"], resumed.json)
		job = self.schedule_call("run_schedule_now", self.member_a, "POST", schedule_id=schedule)
		self.assertEqual(job.status_code, 200, job.json)
		self.assertEqual(job.json["message"]["owner_user"], self.member_a["name"])
		shown = self.schedule_call("get_schedule", self.member_a, schedule_id=schedule).json["message"]
		self.assertEqual([j["job_id"] for j in shown["jobs"]], [job.json["message"]["job_id"]])
		deleted = self.schedule_call("delete_schedule", self.member_a, "POST", schedule_id=schedule)
		self.assertEqual(deleted.status_code, 200, deleted.json)
		self.assertFalse(frappe.db.exists(SCHEDULE, schedule))
		self.assertTrue(frappe.db.exists(JOB, job.json["message"]["job_id"]), "its jobs stay")

	def test_a_desk_delete_keeps_the_jobs_unlinked(self):
		# Given a schedule with a job (Frappe refuses to delete a document others link to)
		schedule = self.add_over_http(self.member_a, self.org_a).json["message"]["schedule_id"]
		job = self.schedule_call("run_schedule_now", self.member_a, "POST", schedule_id=schedule)
		job_id = job.json["message"]["job_id"]

		# When its owner deletes it as the desk does (frappe.client.delete)
		deleted = self.call(
			"frappe.client.delete", self.member_a, "POST", api="/api/method/", doctype=SCHEDULE, name=schedule
		)

		# Then it is gone and its job stays, no longer linked, its key still naming the schedule
		self.assertEqual(deleted.status_code, 200, deleted.json)
		frappe.db.rollback()
		self.assertFalse(frappe.db.exists(SCHEDULE, schedule))
		kept = frappe.db.get_value(JOB, job_id, ["schedule", "schedule_key"], as_dict=True)
		self.assertIsNone(kept.schedule)
		self.assertTrue(kept.schedule_key.startswith(f"{schedule}@"))

	def test_a_desk_save_runs_the_engines_checks(self):
		frappe.set_user(self.member_a["name"])
		doc = frappe.get_doc(
			{
				"doctype": SCHEDULE,
				"job_type": "sample_job",
				"organization": self.org_a,
				"parameters": '{"label": "desk"}',
				"cron": "0  6 * * 1-5",
				"time_zone": "America/New_York",
			}
		).insert()
		self.assertEqual(doc.cron, "0 6 * * 1-5")
		self.assertEqual(doc.owner_user, self.member_a["name"])
		self.assertTrue(doc.next_run_at)
		doc.cron = "0 0 31 4 *"
		with self.assertRaisesRegex(frappe.ValidationError, "cron"):
			doc.save()

	def test_the_cron_hook_queues_a_delayed_job_once_due(self):
		response = self.call(
			"submit_job",
			self.member_a,
			"POST",
			job_type="sample_job",
			organization=self.org_a,
			parameters={"label": "later-hook"},
			delay=3600,
		)
		job = response.json["message"]
		self.assertEqual(job["status"], "Scheduled", response.json)
		scheduler_tick()
		self.assertEqual(self.row(job["job_id"])["status"], "Scheduled", "not due yet")
		due = frappe.utils.add_to_date(frappe.utils.now_datetime(), minutes=-1)
		frappe.db.set_value(JOB, job["job_id"], "run_at", due, update_modified=False)
		frappe.db.commit()

		scheduler_tick()
		scheduler_tick()

		self.assertEqual(self.row(job["job_id"])["status"], "Queued")
		statuses = [e["to_status"] for e in self.engine.history(job["job_id"])["entries"]]
		self.assertEqual(statuses, ["Scheduled", "Queued"])

	def test_the_cron_hook_creates_each_due_job_once(self):
		# Yearly: no other due time can come between the ticks and make a second job legitimately.
		schedule = self.add_over_http(
			self.member_a, self.org_a, parameters={"label": "cron-hook"}, cron="0 0 1 1 *"
		)
		name = schedule.json["message"]["schedule_id"]
		due = frappe.utils.add_to_date(frappe.utils.now_datetime(), minutes=-1)
		frappe.db.set_value(SCHEDULE, name, "next_run_at", due, update_modified=False)
		frappe.db.commit()

		scheduler_tick()
		scheduler_tick()
		# Set back to the due time it has run: the unique schedule_key refuses a second job.
		frappe.db.set_value(SCHEDULE, name, "next_run_at", due, update_modified=False)
		frappe.db.commit()
		scheduler_tick()

		frappe.db.rollback()
		jobs = frappe.get_all(JOB, filters={"schedule": name}, fields=["name", "status", "owner_user"])
		self.assertEqual(len(jobs), 1, jobs)
		self.assertEqual(jobs[0]["owner_user"], self.member_a["name"])
		self.assertGreater(frappe.db.get_value(SCHEDULE, name, "next_run_at"), frappe.utils.now_datetime())
