"""Frappe's Notifications and Webhooks on Background Job fire on the engine's transitions (which
are not Document.save calls), the owner's bell rings for a dead letter and a long job, and what a
transition pays for it. Jobs run in real `bench worker --burst` processes; the Notification Logs
and webhook calls they enqueue run in the same burst (the `default` queue is drained too)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import frappe

from dartwing.dartwing_core.background_jobs.backends import frappe_notify
from dartwing.dartwing_core.background_jobs.transitions import JOB
from dartwing.dartwing_core.tests.utils import DartwingTestCase, run_bench_worker


class Receiver(BaseHTTPRequestHandler):
	"""Keeps the JSON body of every POST in the server's `received` list."""

	def do_POST(self):
		body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
		self.server.received.append(json.loads(body or b"{}"))
		self.send_response(200)
		self.end_headers()

	def log_message(self, *args):
		pass


class TestNotifications(DartwingTestCase):
	def tearDown(self) -> None:
		super().tearDown()
		for doctype in ("Notification", "Webhook"):
			for name in frappe.get_all(doctype, filters={"name": ["like", "dw-test-%"]}, pluck="name"):
				frappe.delete_doc(doctype, name, force=True, ignore_permissions=True)
		users = [self.member_a["name"], self.member_b["name"]]
		frappe.db.delete("Notification Log", {"for_user": ["in", users]})
		frappe.db.commit()
		frappe.cache.delete_value("webhooks")  # Frappe v15 clears it when a Webhook is saved, not deleted
		frappe_notify.forget()

	def bell(self, user: dict, job_id: str) -> list[str]:
		"""The subjects of the user's Notification Logs about the job."""
		frappe.db.rollback()  # see what the workers committed
		return frappe.get_all(
			"Notification Log",
			filters={"for_user": user["name"], "document_type": JOB, "document_name": job_id},
			pluck="subject",
		)

	def value_change_notification(self) -> None:
		frappe.get_doc(
			{
				"doctype": "Notification",
				"name": "dw-test-dead-letter",
				"subject": "dw-test: {{ doc.name }} is {{ doc.status }}",
				"document_type": JOB,
				"event": "Value Change",
				"value_changed": "status",
				"condition": 'doc.status == "Dead Letter"',
				"channel": "System Notification",
				"message": "{{ doc.error_message }}",
				"recipients": [{"receiver_by_document_field": "owner_user"}],
				"enabled": 1,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		frappe_notify.forget()

	def test_a_value_change_notification_fires_once_when_a_job_ends_in_dead_letter(self):
		# Given a Notification on the status becoming Dead Letter, to the job's owner
		self.value_change_notification()
		dead = self.submit_as(self.member_a, job_type="hostile_job", reason="no luck", outcome="hostile_dead")
		fine = self.submit_as(self.member_a, steps=1, delay=0, label="fine")

		run_bench_worker()

		self.assertEqual(self.wait_for(dead["job_id"], {"Dead Letter"}, timeout=10)["status"], "Dead Letter")
		self.assertEqual(self.wait_for(fine["job_id"], {"Completed"}, timeout=10)["status"], "Completed")
		subjects = self.bell(self.member_a, dead["job_id"])
		# once: Queued -> Running changed the status too, but the condition held only at the end
		self.assertEqual(subjects.count(f"dw-test: {dead['job_id']} is Dead Letter"), 1, subjects)
		self.assertFalse([s for s in self.bell(self.member_a, fine["job_id"]) if s.startswith("dw-test")])

	def test_a_webhook_on_update_is_called_on_each_transition(self):
		server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
		server.received = []
		threading.Thread(target=server.serve_forever, daemon=True).start()
		try:
			frappe.get_doc(
				{
					"doctype": "Webhook",
					"name": "dw-test-hook",
					"webhook_doctype": JOB,
					"webhook_docevent": "on_update",
					"condition": f'doc.organization == "{self.org_a}"',
					"request_url": f"http://127.0.0.1:{server.server_port}/jobs",
					"request_method": "POST",
					"request_structure": "JSON",
					"webhook_json": '{"job": "{{ doc.name }}", "status": "{{ doc.status }}"}',
					"enabled": 1,
				}
			).insert(ignore_permissions=True)
			frappe.db.commit()
			frappe_notify.forget()
			job = self.submit_as(self.member_a, steps=1, delay=0, label="hooked")

			run_bench_worker()

			self.assertEqual(self.wait_for(job["job_id"], {"Completed"}, timeout=10)["status"], "Completed")
			deadline = time.monotonic() + 10
			while len(server.received) < 2 and time.monotonic() < deadline:
				time.sleep(0.1)
			calls = [body for body in server.received if body.get("job") == job["job_id"]]
			self.assertEqual([body["status"] for body in calls], ["Running", "Completed"])
		finally:
			server.shutdown()

	def test_the_owner_hears_of_a_dead_letter_and_of_a_long_job_not_of_a_short_one(self):
		dead = self.submit_as(
			self.member_a, job_type="hostile_job", reason="<b>bad</b>", outcome="hostile_dead"
		)
		long = self.submit_as(self.member_a, steps=3, delay=0.4, label="long")
		short = self.submit_as(self.member_a, steps=1, delay=0, label="short")

		run_bench_worker(DARTWING_NOTIFY_AFTER_SECONDS="1")

		for job in (dead, long, short):
			self.wait_for(job["job_id"], {"Completed", "Dead Letter"}, timeout=10)
		[dead_subject] = self.bell(self.member_a, dead["job_id"])
		self.assertIn("ended in Dead Letter", dead_subject)
		self.assertIn("&lt;b&gt;bad&lt;/b&gt;", dead_subject)  # the bell renders HTML: escaped
		[long_subject] = self.bell(self.member_a, long["job_id"])
		self.assertIn("completed after", long_subject)
		self.assertEqual(self.bell(self.member_a, short["job_id"]), [])
		self.assertEqual(self.bell(self.member_b, dead["job_id"]), [])  # the owner only

	def test_what_a_transition_pays(self):
		"""Figures, printed for docs/performance.md, with bounds that catch a regression."""
		job = self.submit_as(self.member_a, steps=1, delay=0, label="cost")
		before = self.engine.store.get(JOB, job["job_id"])
		after = {**before, "status": "Running", "transition_count": before["transition_count"] + 1}
		frappe_notify.forget()
		if frappe_notify.has_document_hooks():
			self.skipTest("this site has Notifications, Webhooks or Server Scripts on Background Job")

		bare = _per_call(lambda: frappe_notify.on_transition(self.engine, before, after), 2000)
		self.value_change_notification()
		hooked = _per_call(lambda: frappe_notify.on_transition(self.engine, before, after), 200)
		frappe.db.rollback()

		print(
			f"\non_transition per call: no hooks {bare * 1e6:.1f} us, one Notification {hooked * 1e3:.2f} ms"
		)
		self.assertLess(bare, 50e-6)  # a memo lookup and the owner rule
		self.assertLess(hooked, 0.05)


def _per_call(call, n: int) -> float:
	call()  # warm: caches, imports
	started = time.perf_counter()
	for _ in range(n):
		call()
	return (time.perf_counter() - started) / n
