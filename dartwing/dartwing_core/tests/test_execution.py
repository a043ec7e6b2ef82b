"""Jobs run by a real `bench worker`, the per-minute scheduler hook, realtime rooms, and the
execution-time permission check."""

import json
import time

import frappe
from frappe.utils.background_jobs import get_redis_connection_without_auth

from dartwing.dartwing_core.background_jobs.backends.frappe_events import audience
from dartwing.dartwing_core.background_jobs.backends.frappe_queue import RUN_JOB
from dartwing.dartwing_core.background_jobs.transitions import JOB
from dartwing.dartwing_core.tasks import scheduler_tick
from dartwing.dartwing_core.tests.utils import DartwingTestCase, run_bench_worker, start_bench_worker

TICK = "dartwing.dartwing_core.tasks.scheduler_tick"


class TestExecution(DartwingTestCase):
	def test_a_real_bench_worker_runs_a_job_to_completion(self):
		job = self.submit_as(self.member_a, steps=3, delay=0.05, label="worker")
		output = run_bench_worker()
		row = self.wait_for(job["job_id"], {"Completed", "Dead Letter"}, timeout=10)
		self.assertEqual(row["status"], "Completed", (row["error_message"], output))
		self.assertEqual(row["progress"], 100)
		self.assertEqual(row["output_reference"], f"/files/worker-{job['job_id']}.txt")
		self.assertEqual(json.loads(row["result"])["steps"], 3)
		history = self.engine.history(job["job_id"])
		self.assertTrue(history["chain_valid"])
		self.assertEqual([e["to_status"] for e in history["entries"]], ["Queued", "Running", "Completed"])

	def test_a_retry_reuses_a_step_committed_before_the_failure(self):
		# Given a job whose first step writes a ToDo and whose second step fails once
		note = f"dw-steps-{frappe.generate_hash(length=8)}"
		job = self.submit_as(self.member_a, job_type="steps_job", note=note)
		run_bench_worker()
		failed = self.wait_for(job["job_id"], {"Failed", "Dead Letter", "Completed"}, timeout=10)
		self.assertEqual(failed["status"], "Failed", failed["error_message"])
		# the first step's ToDo was committed with its record, though the attempt then failed
		self.assertEqual(frappe.db.count("ToDo", {"description": note}), 1)
		steps = frappe.get_doc(JOB, job["job_id"]).steps  # the form's child table
		self.assertEqual(
			[(s.step_name, s.status) for s in steps], [("write", "Completed"), ("flaky", "Failed")]
		)
		self.assertEqual(steps[1].error, f"TransientError: {note}: flaky on attempt 1")

		# When the retry runs
		scheduler_tick()
		run_bench_worker()

		# Then the first step was not run again: one ToDo, whose name the retry reused
		row = self.wait_for(job["job_id"], {"Completed", "Dead Letter"}, timeout=10)
		self.assertEqual(row["status"], "Completed", row["error_message"])
		todo = frappe.get_all("ToDo", filters={"description": note}, pluck="name")
		self.assertEqual(len(todo), 1)
		self.assertEqual(json.loads(row["result"]), {"todo": todo[0], "flaky_passed_on": 2})
		self.assertEqual(row["progress"], 100)
		steps = frappe.get_doc(JOB, job["job_id"]).steps
		self.assertEqual(
			[(s.step_name, s.status, s.attempt) for s in steps],
			[("write", "Completed", 1), ("flaky", "Completed", 2), ("finish", "Completed", 2)],
		)
		history = self.engine.history(job["job_id"])
		self.assertTrue(history["chain_valid"])
		notes = [
			e["message"].split(" in ")[0] for e in history["entries"] if e["from_status"] == e["to_status"]
		]
		self.assertEqual(
			notes,
			[
				"Step write completed",
				f"Step flaky failed: TransientError: {note}: flaky on attempt 1",
				"Step flaky completed",
				"Step finish completed",
			],
		)
		frappe.db.delete("ToDo", {"description": note})
		frappe.db.commit()

	def test_items_keep_their_writes_but_a_failed_items_writes_go(self):
		note = f"dw-items-{frappe.generate_hash(length=8)}"
		job = self.submit_as(self.member_a, job_type="items_job", note=note)
		run_bench_worker()
		row = self.wait_for(job["job_id"], {"Completed", "Dead Letter"}, timeout=10)
		self.assertEqual(row["status"], "Completed", row["error_message"])  # max_failed_items 1
		self.assertEqual(
			(row["items_total"], row["items_done"], row["items_failed"], row["items_skipped"]), (5, 4, 1, 0)
		)
		todos = frappe.get_all("ToDo", filters={"description": ["like", f"{note}-%"]}, pluck="description")
		self.assertEqual(sorted(todos), [f"{note}-{n}" for n in (0, 1, 3, 4)])  # item 2's rolled back
		items = self.engine.job_items(job["job_id"])["items"]
		self.assertEqual(
			[i["status"] for i in items], ["Completed", "Completed", "Failed", "Completed", "Completed"]
		)
		self.assertEqual(items[2]["error_message"], "item 2 refused")
		self.assertEqual(items[0]["result"], {"item_key": f"{job['job_id']}:0"})
		frappe.db.delete("ToDo", {"description": ["like", f"{note}-%"]})
		frappe.db.commit()

	def test_a_paused_job_is_skipped_by_the_worker_and_runs_once_resumed(self):
		job = self.submit_as(self.member_a, steps=1, delay=0, label="paused")
		self.engine.pause(job["job_id"], user=self.member_a["name"])
		run_bench_worker()  # its message arrives and is skipped
		self.assertEqual(self.row(job["job_id"])["status"], "Paused")
		self.engine.resume(job["job_id"], user=self.member_a["name"])
		run_bench_worker()
		row = self.wait_for(job["job_id"], {"Completed", "Dead Letter"}, timeout=10)
		self.assertEqual(row["status"], "Completed", row["error_message"])
		self.assertEqual(row["retry_count"], 0)
		history = self.engine.history(job["job_id"])
		self.assertTrue(history["chain_valid"])
		self.assertEqual(
			[e["to_status"] for e in history["entries"]],
			["Queued", "Paused", "Queued", "Running", "Completed"],
		)

	def test_the_job_runs_as_its_owner(self):
		job = self.submit_as(self.member_a, job_type="whoami_job")
		run_bench_worker()
		row = self.wait_for(job["job_id"], {"Completed", "Dead Letter"}, timeout=10)
		self.assertEqual(json.loads(row["result"]), {"user": self.member_a["name"]}, row["error_message"])

	def test_an_owner_who_lost_access_gets_permission_denied(self):
		job = self.submit_as(self.member_a, label="revoked")
		permission = frappe.get_value(
			"User Permission", {"user": self.member_a["name"], "allow": "Organization"}, "name"
		)
		frappe.delete_doc("User Permission", permission, ignore_permissions=True)
		frappe.db.commit()
		try:
			run_bench_worker()
			row = self.wait_for(job["job_id"], {"Completed", "Dead Letter"}, timeout=10)
			self.assertEqual(row["status"], "Dead Letter")
			self.assertTrue(row["error_message"].startswith("Permission denied"), row["error_message"])
			self.assertIsNone(row["result"])
		finally:
			frappe.get_doc(
				{
					"doctype": "User Permission",
					"user": self.member_a["name"],
					"allow": "Organization",
					"for_value": self.org_a,
				}
			).insert(ignore_permissions=True)
			frappe.db.commit()

	def test_a_suspended_organizations_jobs_wait_then_run(self):
		job = self.submit_as(self.member_b, organization=self.org_b, steps=1, delay=0, label="suspended")
		frappe.db.set_value("Organization", self.org_b, "status", "Suspended")
		frappe.db.commit()
		try:
			run_bench_worker()
			self.assertEqual(self.row(job["job_id"])["status"], "Pending")
		finally:
			frappe.db.set_value("Organization", self.org_b, "status", "Active")
			frappe.db.commit()
		scheduler_tick()
		self.assertEqual(self.row(job["job_id"])["status"], "Queued")
		run_bench_worker()
		self.assertEqual(self.wait_for(job["job_id"], {"Completed"}, timeout=10)["status"], "Completed")

	def test_a_deleted_organization_fails_its_jobs_without_retry(self):
		org = f"dw-gone-{frappe.generate_hash(length=6)}"
		frappe.get_doc({"doctype": "Organization", "organization_name": org, "status": "Active"}).insert()
		frappe.db.commit()
		job = self.engine.submit("sample_job", org, {"label": "gone"}, user="Administrator")
		frappe.db.delete("Organization", org)
		frappe.db.commit()
		try:
			run_bench_worker()
			row = self.wait_for(job["job_id"], {"Dead Letter", "Completed"}, timeout=10)
			self.assertEqual(row["status"], "Dead Letter")
			self.assertEqual(row["error_message"], "Organization not found")
			self.assertEqual(row["retry_count"], 0)
		finally:
			frappe.db.delete("Job Execution Log", {"background_job": job["job_id"]})
			frappe.db.delete(JOB, job["job_id"])
			frappe.db.commit()

	def test_the_cron_hook_requeues_due_retries_and_releases_dependents(self):
		events = frappe.get_hooks("scheduler_events")
		self.assertIn(TICK, events["cron"]["* * * * *"])
		scheduled = frappe.get_all(
			"Scheduled Job Type", filters={"method": TICK}, fields=["name", "frequency"]
		)
		self.assertEqual(len(scheduled), 1, "migrate creates the Scheduled Job Type of the cron hook")

		flaky = self.submit_as(self.member_a, job_type="flaky_job", failures=1, label="retry")
		parent = self.submit_as(self.member_a, steps=1, delay=0, label="parent")
		frappe.set_user(self.member_a["name"])
		child = self.engine.submit(
			"sample_job",
			self.org_a,
			{"steps": 1, "delay": 0, "label": "child"},
			depends_on=parent["job_id"],
			user=self.member_a["name"],
		)
		frappe.set_user("Administrator")
		self.assertEqual(child["status"], "Pending")

		run_bench_worker()
		failed = self.row(flaky["job_id"])
		self.assertEqual(failed["status"], "Failed")
		self.assertIsNotNone(failed["next_retry_at"])
		self.assertEqual(self.row(parent["job_id"])["status"], "Completed")
		# The parent's completion released the child at once; the hook is the backstop.
		self.assertIn(self.row(child["job_id"])["status"], {"Queued", "Running", "Completed"})

		frappe.db.set_value(JOB, flaky["job_id"], "next_retry_at", frappe.utils.add_to_date(None, minutes=-1))
		frappe.db.commit()
		frappe.get_doc("Scheduled Job Type", scheduled[0]["name"]).execute()  # Frappe's own path
		self.assertEqual(self.row(flaky["job_id"])["status"], "Queued")
		run_bench_worker()
		self.assertEqual(self.wait_for(flaky["job_id"], {"Completed"}, timeout=10)["status"], "Completed")
		self.assertEqual(self.wait_for(child["job_id"], {"Completed"}, timeout=10)["status"], "Completed")

	def test_queue_messages_are_site_namespaced_and_point_at_the_executor(self):
		job = self.submit_as(self.member_a, label="message")
		from frappe.utils.background_jobs import get_job

		message = get_job(f"{job['job_id']}-1")
		self.assertIsNotNone(message)
		self.assertEqual(message.id, f"{frappe.local.site}::{job['job_id']}-1")
		self.assertEqual(message.kwargs["method"], RUN_JOB)
		self.assertEqual(
			message.kwargs["kwargs"], {"background_job": job["job_id"], "message_id": f"{job['job_id']}-1"}
		)
		self.engine.cancel(job["job_id"], user="Administrator")


class TestLogLines(DartwingTestCase):
	def test_a_runs_lines_go_to_the_sites_log_with_its_trace_id(self):
		# Given a job submitted under a trace (its traceparent, as a traced submit stores it)
		trace_id = frappe.generate_hash(length=32)
		job = self.submit_as(self.member_a, steps=1, delay=0, label="traced")
		frappe.db.set_value(JOB, job["job_id"], "traceparent", f"00-{trace_id}-{'1' * 16}-01")
		frappe.db.commit()
		site_log = frappe.get_site_path("logs", "dartwing.log")

		# When a real bench worker runs it, at INFO, as JSON lines
		run_bench_worker(DARTWING_LOG_LEVEL="INFO", DARTWING_LOG_FORMAT="json")

		# Then the site's Frappe log holds the run's lines, each one JSON object with the trace id
		self.assertEqual(self.wait_for(job["job_id"], {"Completed"}, timeout=10)["status"], "Completed")
		with open(site_log) as log:
			lines = [json.loads(line) for line in log if job["job_id"] in line]
		self.assertIn("Job succeeded", " ".join(line["message"] for line in lines))
		succeeded = next(line for line in lines if line["message"].startswith("Job succeeded"))
		self.assertEqual(succeeded["trace_id"], trace_id)
		self.assertEqual((succeeded["job_type"], succeeded["attempt"]), ("sample_job", 1))
		self.assertGreaterEqual(succeeded["duration"], 0)


class TestWait(DartwingTestCase):
	def test_wait_hears_the_end_of_a_job_a_bench_worker_runs(self):
		job = self.submit_as(self.member_a, steps=3, delay=0.3, label="waited")
		worker = start_bench_worker()
		try:
			# Frappe's realtime events for the job's room, and reads on a connection of its own
			result = self.engine.wait(job["job_id"], timeout=60)
		finally:
			worker.communicate(timeout=120)  # --burst: it exits once the queues are empty
		self.assertEqual(result["steps"], 3)
		self.assertEqual(result["output_reference"], f"/files/waited-{job['job_id']}.txt")

	def test_wait_raises_job_failed_for_a_dead_letter(self):
		from dartwing.dartwing_core.background_jobs import JobFailed

		job = self.submit_as(self.member_a, job_type="hostile_job", reason="no", outcome="hostile_dead")
		worker = start_bench_worker()
		try:
			with self.assertRaises(JobFailed) as failed:
				self.engine.wait(job["job_id"], timeout=60)
		finally:
			worker.communicate(timeout=120)
		self.assertEqual(failed.exception.status, "Dead Letter")
		self.assertEqual(failed.exception.error_type, "Permanent")


class TestRealtime(DartwingTestCase):
	def test_events_go_to_the_job_room_and_its_owner_only_while_it_runs(self):
		pubsub = get_redis_connection_without_auth().pubsub(ignore_subscribe_messages=True)
		pubsub.subscribe("events")
		job = self.submit_as(self.member_a, steps=4, delay=1.0, label="realtime")
		worker = start_bench_worker()
		messages = []  # (seconds since start, message)
		started = time.monotonic()
		try:
			while time.monotonic() - started < 60:
				message = pubsub.get_message(timeout=0.2)
				if message is not None:
					data = json.loads(message["data"])
					if data.get("namespace") == frappe.local.site and _about(data, job["job_id"]):
						messages.append((time.monotonic() - started, data))
				elif worker.poll() is not None:
					break
		finally:
			worker.kill()
			worker.communicate()
			pubsub.close()
		events = [m for _, m in messages]
		rooms = {m["room"] for m in events}
		# list_update goes to the user room of each user who may see the job, never to the
		# doctype's room, which every Dartwing User joins whatever their organization.
		self.assertEqual(
			rooms,
			{f"doc:{JOB}/{job['job_id']}", f"user:{self.member_a['name']}"}
			| {f"user:{user}" for user in audience(self.org_a)},
		)
		self.assertNotIn(f"user:{self.member_b['name']}", rooms)
		in_doc_room = [(t, m) for t, m in messages if m["room"].startswith("doc:")]
		statuses = [m["message"]["status"] for _, m in in_doc_room if m["event"] == "dartwing_job_status"]
		self.assertEqual(statuses, ["Queued", "Running", "Completed"])
		progress = [
			(t, m["message"]["progress"]) for t, m in in_doc_room if m["event"] == "dartwing_job_progress"
		]
		self.assertEqual(progress[-1][1], 100, progress)
		# Live, not replayed at the end: each step's event arrives as the step ends, 1 s apart,
		# so even the last one before 100% comes about a second before completion.
		completed_at = next(t for t, m in in_doc_room if m["message"]["status"] == "Completed")
		self.assertEqual([p for _, p in progress], [25, 50, 75, 100])
		self.assertGreater(completed_at - progress[2][0], 0.5, (progress, completed_at))
		list_updates = [m for m in events if m["event"] == "list_update"]
		self.assertTrue(list_updates)
		# Only what the list view needs.
		self.assertTrue(all(set(m["message"]) == {"doctype", "name"} for m in list_updates))


def _about(data: dict, job_id: str) -> bool:
	message = data.get("message") or {}
	return message.get("job_id") == job_id or message.get("name") == job_id


class TestPriorityQueues(DartwingTestCase):
	def test_priorities_use_the_benchs_dartwing_queues_or_the_stock_ones(self):
		from frappe.utils.background_jobs import get_queues_timeout

		queue = self.engine.queue
		saved = frappe.local.conf.get("workers")
		frappe.local.conf["workers"] = {}  # a bench that declares no queues of its own
		get_queues_timeout.cache_clear()
		stock = {p: queue.queue_for(p) for p in ("Critical", "High", "Normal", "Low")}
		self.assertEqual(stock, {"Critical": "short", "High": "short", "Normal": "default", "Low": "long"})
		frappe.local.conf["workers"] = {
			name: {"timeout": 5000}
			for name in ("dartwing_critical", "dartwing_high", "dartwing_normal", "dartwing_low")
		}
		get_queues_timeout.cache_clear()
		try:
			self.assertEqual(queue.queue_for("Critical"), "dartwing_critical")
			self.assertEqual(queue.queue_for("Low"), "dartwing_low")
			job = self.submit_as(self.member_a, label="priority")
			from frappe.utils.background_jobs import get_job

			message = get_job(f"{job['job_id']}-1")
			self.assertEqual(message.origin.rsplit(":", 1)[-1], "dartwing_normal")
			self.engine.cancel(job["job_id"], user="Administrator")
			message.delete()  # the test's own message: no worker needs to run it
		finally:
			if saved is None:
				frappe.local.conf.pop("workers", None)
			else:
				frappe.local.conf["workers"] = saved
			get_queues_timeout.cache_clear()


class TestHandlerTransactions(DartwingTestCase):
	def todos(self, note: str) -> int:
		frappe.db.rollback()
		return frappe.db.count("ToDo", {"description": note})

	def tearDown(self) -> None:
		super().tearDown()
		frappe.db.delete("ToDo", {"description": ["like", "dw-note-%"]})
		frappe.db.commit()

	def test_a_failed_attempt_leaves_none_of_its_writes(self):
		note = f"dw-note-{frappe.generate_hash(length=6)}"
		job = self.submit_as(self.member_a, job_type="writer_job", note=note, fail=True)
		run_bench_worker()
		row = self.row(job["job_id"])
		self.assertEqual(row["status"], "Failed", row["error_message"])
		self.assertEqual(self.todos(note), 0)

	def test_saving_progress_never_commits_a_handlers_uncounted_writes(self):
		note = f"dw-note-{frappe.generate_hash(length=6)}"
		job = self.submit_as(
			self.member_a, job_type="writer_job", note=note, steps=1, fail=True, uncounted=True
		)
		run_bench_worker()
		row = self.row(job["job_id"])
		self.assertEqual(row["status"], "Failed", row["error_message"])
		self.assertEqual(row["progress"], 100, "the progress write itself went through")
		self.assertEqual(self.todos(note), 0)

	def test_progress_apart_falls_back_when_this_transaction_holds_the_row(self):
		job = self.submit_as(self.member_a, label="apart")
		store = self.engine.store
		self.assertTrue(store.update(JOB, job["job_id"], {"progress": 5}))  # commits: ours
		frappe.db.sql(f"update `tab{JOB}` set progress_message='held' where name=%s", job["job_id"])
		started = time.monotonic()
		self.assertTrue(store.update_apart(JOB, job["job_id"], {"progress": 7}))
		self.assertLess(time.monotonic() - started, 20, "waited out the lock instead of falling back")
		frappe.db.commit()
		self.assertEqual(self.row(job["job_id"])["progress"], 7)
		self.engine.cancel(job["job_id"], user="Administrator")

	def test_a_successful_attempt_commits_its_writes_with_its_completion(self):
		note = f"dw-note-{frappe.generate_hash(length=6)}"
		job = self.submit_as(self.member_a, job_type="writer_job", note=note)
		run_bench_worker()
		self.assertEqual(self.row(job["job_id"])["status"], "Completed")
		self.assertEqual(self.todos(note), 1)

	def test_progress_is_visible_and_cancel_is_not_blocked_while_the_handler_holds_writes(self):
		note = f"dw-note-{frappe.generate_hash(length=6)}"
		job = self.submit_as(self.member_a, job_type="writer_job", note=note, steps=40, delay=0.1)
		worker = start_bench_worker()
		try:
			deadline = time.monotonic() + 30
			while time.monotonic() < deadline and not (self.row(job["job_id"])["progress"] or 0) > 0:
				time.sleep(0.1)
			self.assertGreater(self.row(job["job_id"])["progress"], 0, "progress saved apart is visible")
			frappe.db.sql("set session innodb_lock_wait_timeout = 5")
			self.engine.cancel(job["job_id"], user="Administrator")  # would wait on the row's lock
			worker.communicate(timeout=60)
		finally:
			worker.kill()
			frappe.db.sql("set session innodb_lock_wait_timeout = 50")
		row = self.row(job["job_id"])
		self.assertEqual(row["status"], "Canceled", row["error_message"])
		self.assertLess(row["progress"], 100)
		self.assertEqual(self.todos(note), 0, "a canceled attempt's writes are rolled back")

	def test_the_heartbeat_keeps_a_job_longer_than_its_lease_alive(self):
		job = self.submit_as(self.member_a, steps=6, delay=1, label="heartbeat")
		worker = start_bench_worker(DARTWING_LEASE_SECONDS="3")
		try:
			time.sleep(4.5)
			self.assertEqual(scheduler_tick()["rescue_orphans"], 0)  # the 3 s lease was renewed
			running = self.row(job["job_id"])
			self.assertEqual(running["status"], "Running")
			self.assertGreater(running["heartbeat_at"], running["started_at"])
			worker.communicate(timeout=60)
		finally:
			worker.kill()
		self.assertEqual(self.row(job["job_id"])["status"], "Completed")

	def test_a_refused_submit_does_not_make_the_next_one_commit_the_callers_writes(self):
		note = f"dw-note-{frappe.generate_hash(length=6)}"
		first = self.submit_as(self.member_a, label="caller-1")
		frappe.get_doc({"doctype": "ToDo", "description": note}).insert(ignore_permissions=True)
		with self.assertRaises(Exception):
			self.engine.submit("sample_job", self.org_a, {"label": "caller-1"}, user="Administrator")
		second = self.engine.submit("sample_job", self.org_a, {"label": "caller-2"}, user="Administrator")
		frappe.db.rollback()  # the caller gives up: its ToDo and the job it submitted go
		self.assertEqual(self.todos(note), 0)
		self.assertIsNone(self.row(second["job_id"]))
		self.assertIsNotNone(self.row(first["job_id"]))
