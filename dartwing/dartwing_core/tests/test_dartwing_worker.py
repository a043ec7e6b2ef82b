"""`bench dartwing-worker`: jobs run in long-lived children (no fork per job), children are
replaced after --max-jobs-per-child jobs, and a killed child's job is settled at once and retried."""

import os
import signal
import subprocess
import time

import frappe
from frappe.utils import get_bench_path

from dartwing.dartwing_core.tests.utils import (
	SITES_PATH,
	TEST_HANDLERS,
	DartwingTestCase,
	bench_command,
	routed_queues,
)


def dartwing_worker(*args: str, imports: str = TEST_HANDLERS) -> subprocess.Popen:
	return subprocess.Popen(
		bench_command("dartwing-worker", "--queue", routed_queues(), *args),
		cwd=os.path.join(get_bench_path(), SITES_PATH),
		stdout=subprocess.PIPE,
		stderr=subprocess.PIPE,
		text=True,
		env={**os.environ, "PYTHONUNBUFFERED": "1", "DARTWING_IMPORTS": imports},
	)


class TestDartwingWorker(DartwingTestCase):
	def test_jobs_run_in_long_lived_children_replaced_after_their_quota(self):
		jobs = [
			self.submit_as(self.member_a, label=f"warm-{n}", steps=1, delay=0)["job_id"] for n in range(8)
		]
		frappe.db.commit()
		worker = dartwing_worker("--burst", "--workers", "2", "--max-jobs-per-child", "3")
		_stdout, stderr = worker.communicate(timeout=120)
		self.assertEqual(worker.returncode, 0, stderr[-2000:])
		rows = [self.row(job) for job in jobs]
		self.assertEqual(
			{row["status"] for row in rows}, {"Completed"}, ([r["status"] for r in rows], stderr[-3000:])
		)
		pids = {row["worker_name"].rsplit(":", 1)[1] for row in rows}
		# Two children serving three jobs each before their replacement: no fork per job
		# (8 pids), and more than the first two children (replaced).
		self.assertLess(len(pids), len(jobs))
		self.assertGreaterEqual(len(pids), 3)
		self.assertNotIn(str(worker.pid), pids, "jobs run in the children, not the supervisor")

	def test_a_killed_childs_job_is_settled_at_once_and_retried(self):
		job = self.submit_as(self.member_a, "writer_job", note="warm-kill", steps=200, delay=0.1)["job_id"]
		frappe.db.commit()
		worker = dartwing_worker("--workers", "1")
		try:
			row = self.wait_for(job, {"Running"}, timeout=60)
			child = int(row["worker_name"].rsplit(":", 1)[1])
			self.assertNotEqual(child, worker.pid)
			os.kill(child, signal.SIGKILL)
			# The lease is 60 s: settled within a few seconds means the supervisor did it.
			settled = self.wait_for(job, {"Failed", "Queued", "Running"} - {"Running"}, timeout=15)
			self.assertIn("WorkHorseDied", settled["error_message"] or "")
			self.assertEqual(settled["retry_count"], 1)
		finally:
			worker.send_signal(signal.SIGTERM)  # right after the replacement child started
			stopped = time.monotonic()
			try:
				worker.communicate(timeout=30)
			except subprocess.TimeoutExpired:
				worker.kill()
				worker.communicate()
		self.assertLess(time.monotonic() - stopped, 15, "SIGTERM stops the supervisor and its children")
		self.engine.cancel(job, user="Administrator")
		frappe.db.commit()

	def test_children_that_cannot_start_stop_the_worker_with_an_error(self):
		"""A handler module that does not import fails every child at start: the supervisor stops
		after a few, with an error, instead of respawning them for ever."""
		worker = dartwing_worker("--burst", "--workers", "1", imports="dw_no_such_handler_module")
		try:
			_stdout, stderr = worker.communicate(timeout=60)
		finally:
			worker.kill()
		self.assertEqual(worker.returncode, 1, stderr[-2000:])
		self.assertIn("died before running a job", stderr)
		self.assertIn("dw_no_such_handler_module", stderr)
