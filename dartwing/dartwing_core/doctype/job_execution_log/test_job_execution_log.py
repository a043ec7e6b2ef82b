import frappe

from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG
from dartwing.dartwing_core.doctype.job_execution_log.job_execution_log import JobExecutionLog
from dartwing.dartwing_core.tests.utils import DartwingTestCase


class TestJobExecutionLog(DartwingTestCase):
	def test_rows_are_append_only(self):
		job = self.submit_as(self.member_a, label="log")
		name = frappe.get_value(LOG, {"background_job": job["job_id"]}, "name")
		log = frappe.get_doc(LOG, name)
		log.message = "rewritten"
		with self.assertRaisesRegex(frappe.ValidationError, "cannot be changed"):
			log.save()
		with self.assertRaisesRegex(frappe.ValidationError, "removed only with their job"):
			frappe.delete_doc(LOG, name)
		with self.assertRaisesRegex(frappe.ValidationError, "written by the job engine"):
			frappe.get_doc(
				{"doctype": LOG, "background_job": job["job_id"], "to_status": "Completed"}
			).insert()
		self.assertTrue(self.engine.history(job["job_id"])["chain_valid"])

	def test_log_settings_clears_old_finished_jobs_with_their_logs(self):
		self.assertIn(LOG, frappe.get_hooks("default_log_clearing_doctypes"))
		old = self.submit_as(self.member_a, label="old")
		new = self.submit_as(self.member_a, label="new")
		for job in (old, new):
			self.engine.cancel(job["job_id"], user="Administrator")
		frappe.db.set_value(  # it ended 40 days ago
			JOB, old["job_id"], "completed_at", frappe.utils.add_days(None, -40), update_modified=False
		)
		frappe.db.commit()
		JobExecutionLog.clear_old_logs(days=30)
		frappe.db.commit()
		self.assertFalse(frappe.db.exists(JOB, old["job_id"]))
		self.assertEqual(frappe.db.count(LOG, {"background_job": old["job_id"]}), 0)
		self.assertTrue(frappe.db.exists(JOB, new["job_id"]))
		self.assertTrue(self.engine.history(new["job_id"])["chain_valid"])
