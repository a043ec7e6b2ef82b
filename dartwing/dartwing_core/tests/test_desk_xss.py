"""Stored XSS, tried in a real browser: jobs (one of them Scheduled) and a Job Schedule whose every
handler- or user-controlled field holds markup that would run script, opened in every desk view
(list, report, forms, Job Execution Log, Job Schedule, Job Monitor, the confirm dialog) as an admin and as a member, with hostile realtime events
delivered to the open pages. Fails if any script runs.

Needs Chromium (Debian's `chromium`) and the `playwright` package (the app's bench dev
dependency: `bench setup requirements --dev`); `make bench-test` installs both. Serves the site
with the bench's own web server on a free port, so no `bench start` is needed."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import frappe
from frappe.utils import get_bench_path
from frappe.utils.password import update_password

from dartwing.dartwing_core.background_jobs import schedules
from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG
from dartwing.dartwing_core.tests.utils import SITES_PATH, DartwingTestCase, bench_command

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MARK = "window.__dw_xss=(window.__dw_xss||[]).concat"


def payload(where: str) -> str:
	"""Markup that runs script if rendered as HTML, in text, attribute and JSON positions."""
	run = f"{MARK}(['{where}'])"
	return f'<img src=x onerror="{run}">\'"><svg onload="{run}"><script>{run}</script>'


def short_payload(where: str) -> str:
	"""Markup that runs script, short enough for a key or a step name (140 characters)."""
	return f"<img src=x onerror=\"{MARK}(['{where}'])\">"


class TestDeskEscapesEverything(DartwingTestCase):
	@classmethod
	def setUpClass(cls) -> None:
		super().setUpClass()
		cls.skip_reason = _missing_browser()
		if cls.skip_reason:
			return
		# A site whose setup wizard never ran routes every desk page to it: pretend it ran.
		cls.setup_state = (
			frappe.db.get_single_value("System Settings", "setup_complete"),
			frappe.db.get_default("desktop:home_page"),
		)
		frappe.db.set_single_value("System Settings", "setup_complete", 1)
		frappe.db.set_default("desktop:home_page", "workspace")
		frappe.clear_cache()
		cls.password = frappe.generate_hash(length=16)
		for user in (cls.admin, cls.member_a):
			update_password(user["name"], cls.password)
		engine = get_engine()
		frappe.set_user(cls.member_a["name"])
		roles = set(frappe.get_roles())
		cls.jobs = {}
		for kind in ("hostile_ok", "hostile_fail", "hostile_dead", "hostile_items"):
			# hostile_items: a step and failed items whose names, keys and errors are markup
			keys = [short_payload(f"{kind}-{n}") for n in range(3)] if kind == "hostile_items" else None
			job = engine.submit(
				"hostile_job",
				cls.org_a,
				{"reason": payload(kind), "outcome": kind, "keys": keys},
				user=cls.member_a["name"],
				roles=roles,
			)
			cls.jobs[kind] = job["job_id"]
		later = {"reason": payload("scheduled"), "outcome": "hostile_ok"}
		cls.scheduled = engine.submit(
			"hostile_job", cls.org_a, later, user=cls.member_a["name"], roles=roles, delay=3600
		)["job_id"]
		cls.schedule = schedules.add(
			engine,
			{
				"job_type": "hostile_job",
				"organization": cls.org_a,
				"parameters": {"reason": payload("schedule"), "outcome": "hostile_ok"},
				"cron": "0 3 * * *",
				"time_zone": "UTC",
			},
			user=cls.member_a["name"],
			roles=roles,
		)["name"]
		frappe.set_user("Administrator")
		frappe.db.commit()
		for job_id in cls.jobs.values():
			execute(engine, job_id, engine.store.get(JOB, job_id)["queue_job_id"])
		frappe.db.commit()
		cls.server, cls.base_url = _serve_site()

	@classmethod
	def tearDownClass(cls) -> None:
		server = getattr(cls, "server", None)
		if server is not None:
			server.terminate()
			with contextlib.suppress(subprocess.TimeoutExpired):
				server.wait(timeout=10)
			server.kill()
		if getattr(cls, "setup_state", None):
			complete, home_page = cls.setup_state
			frappe.db.set_single_value("System Settings", "setup_complete", complete or 0)
			frappe.db.set_default("desktop:home_page", home_page)
			frappe.db.commit()
			frappe.clear_cache()
		super().tearDownClass()

	def setUp(self) -> None:
		super().setUp()
		if self.skip_reason:
			print(f"\nSKIPPED {self.id()}: {self.skip_reason}", file=sys.stderr)
			self.skipTest(self.skip_reason)

	def test_no_script_runs_in_any_view_for_an_admin_or_a_member(self):
		from playwright.sync_api import sync_playwright

		log = frappe.get_all(LOG, filters={"background_job": self.jobs["hostile_fail"]}, pluck="name")[0]
		views = [
			"/app/background-job",
			"/app/background-job/view/report",
			*(f"/app/background-job/{job_id}" for job_id in self.jobs.values()),
			"/app/job-execution-log",
			f"/app/job-execution-log/{log}",
			f"/app/background-job/{self.scheduled}",
			"/app/background-job-item",
			f"/app/background-job-item/{self.jobs['hostile_items']}-0",
			"/app/job-schedule",
			f"/app/job-schedule/{self.schedule}",
			"/app/job-monitor",
		]
		with sync_playwright() as playwright:
			browser = playwright.chromium.launch(
				executable_path=CHROMIUM,
				args=[
					"--no-sandbox",
					"--disable-gpu",
					"--disable-quic",
					"--no-first-run",
					"--disable-background-networking",
					"--disable-component-update",
					"--disable-sync",
				],
			)
			try:
				for user in (self.admin, self.member_a):
					if user is self.member_a:  # the Job Monitor is for admins (its page roles)
						views = [view for view in views if view != "/app/job-monitor"]
					ran = self._walk(browser, user, views)
					self.assertEqual(ran, [], f"script ran for {user['name']}")
			finally:
				browser.close()

	def test_a_member_submits_from_the_new_job_form_and_cancels_another(self):
		"""Add Background Job as a Dartwing User: an editable form, Save submits through the
		engine and shows the job; Cancel Job on another job cancels it."""
		from playwright.sync_api import sync_playwright

		other = get_engine().submit(
			"sample_job", self.org_a, {"label": "to-cancel", "steps": 50}, user=self.member_a["name"]
		)["job_id"]
		frappe.db.commit()
		with sync_playwright() as playwright:
			browser = playwright.chromium.launch(
				executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
			)
			try:
				context = browser.new_context()
				page = context.new_page()
				page.on("dialog", lambda dialog: dialog.dismiss())
				context.request.post(
					f"{self.base_url}/api/method/login",
					form={"usr": self.member_a["name"], "pwd": self.password},
				)
				page.goto(f"{self.base_url}/app/background-job/new", wait_until="networkidle")
				page.wait_for_timeout(1000)
				self._fill_link(page, "job_type", "sample_job")
				self._fill_link(page, "organization", self.org_a)
				page.wait_for_timeout(1000)  # the job type's parameter hint fills the editor
				page.evaluate(
					"cur_frm.set_value('input_parameters', JSON.stringify({label: 'from-the-form', steps: 2}))"
				)
				page.keyboard.press("Control+s")
				page.wait_for_url(lambda url: "/new" not in url, timeout=15000)
				job_id = page.url.rstrip("/").rsplit("/", 1)[1]
				row = self.row(job_id)
				self.assertEqual(
					(row["owner_user"], row["triggered_by"], row["status"]),
					(self.member_a["name"], "desk", "Queued"),
				)
				page.wait_for_timeout(1000)
				self.assertTrue(page.locator(".dartwing-job-progress").count(), "the form follows the job")

				self._cancel_from_its_form(page, other)

				# A job waiting for its retry is unfinished too: the form offers Cancel for it.
				waiting = get_engine().submit(
					"sample_job", self.org_a, {"label": "waiting", "steps": 1}, user=self.member_a["name"]
				)["job_id"]
				frappe.db.set_value(JOB, waiting, "status", "Failed")  # as a failed attempt leaves it
				frappe.db.commit()
				self._cancel_from_its_form(page, waiting)
				context.close()
			finally:
				browser.close()

	def _fill_link(self, page, fieldname: str, value: str) -> None:
		field = page.locator(f"input[data-fieldname='{fieldname}']").first
		field.click()
		field.fill(value)
		page.wait_for_timeout(800)
		page.keyboard.press("Escape")
		page.evaluate(f"cur_frm.set_value({fieldname!r}, {value!r})")

	def _walk(self, browser, user: dict, views: list[str]) -> list:
		context = browser.new_context()
		page = context.new_page()
		dialogs = []
		page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
		login = context.request.post(
			f"{self.base_url}/api/method/login", form={"usr": user["name"], "pwd": self.password}
		)
		self.assertEqual(login.status, 200, login.text())
		ran = []
		seen = 0
		for view in views:
			page.goto(self.base_url + view, wait_until="networkidle")
			page.wait_for_timeout(1500)
			route = page.evaluate("frappe.get_route_str()")
			self.assertNotIn("setup-wizard", route, f"{view}: the desk showed {route}")
			self.assertNotIn("/login", page.url, view)
			if view.startswith("/app/background-job/") and "view" not in view:
				self._deliver_hostile_events(page, view.rsplit("/", 1)[1])
				self._open_cancel_dialog(page)
				if view.endswith(self.jobs["hostile_items"]):
					self._open_failed_items(page)
			if view.startswith("/app/job-schedule/"):
				shown = page.evaluate("window.cur_frm && cur_frm.doc && cur_frm.doc.name")
				self.assertEqual(shown, view.rsplit("/", 1)[1], f"{view}: the schedule form rendered")
			if view == "/app/job-monitor":
				self.assertTrue(
					page.locator(".dartwing-job-monitor").first.inner_text(), "the monitor rendered"
				)
			marks = page.evaluate("window.__dw_xss || []")
			ran += [(view, mark) for mark in marks]
			ran += [(view, f"dialog: {text}") for text in dialogs[seen:]]
			seen = len(dialogs)
		context.close()
		return ran

	def _open_failed_items(self, page) -> None:
		"""The form's failed-items dialog, whose rows show each item's key and error."""
		link = page.locator(".dw-failed-items").first
		link.wait_for(timeout=10000)
		link.click()
		rows = page.locator(".modal.show table tbody tr")
		rows.first.wait_for(timeout=10000)
		self.assertEqual(rows.count(), 3, "the dialog lists the three failed items")
		page.keyboard.press("Escape")

	def _deliver_hostile_events(self, page, job_id: str) -> None:
		"""The handlers the page registered for realtime events, called as Socket.IO would."""
		delivered = page.evaluate(
			"""([job_id, text]) => {
				const socket = frappe.realtime.socket;
				if (!socket || !socket.listeners) return "no socket";
				const job = {job_id, status: text, progress: 50, progress_message: text,
					error_message: text, error_type: text, message: text, eta_seconds: 3,
					owner_user: text, organization: text, job_type: text};
				let n = 0;
				for (const event of ["dartwing_job_status", "dartwing_job_progress"]) {
					for (const listener of socket.listeners(event)) { listener(job); n++; }
				}
				return n || Object.keys(socket._callbacks || {}).join(",");
			}""",
			[job_id, payload("realtime")],
		)
		self.assertIsInstance(delivered, int, f"the form listens for job events; listeners: {delivered}")
		page.wait_for_timeout(500)

	def _open_cancel_dialog(self, page) -> None:
		"""The confirm dialog names the job: open it where the job offers Cancel."""
		if self._click_action(page, "Cancel", required=False):
			page.wait_for_timeout(500)
			page.keyboard.press("Escape")

	def _cancel_from_its_form(self, page, job_id: str) -> None:
		"""Actions -> Cancel on the job's form, confirmed; the job ends Canceled."""
		page.goto(f"{self.base_url}/app/background-job/{job_id}", wait_until="networkidle")
		page.wait_for_timeout(1000)
		self._click_action(page, "Cancel")
		page.locator(".modal.show button.btn-primary").first.click()
		deadline = time.monotonic() + 10
		while self.row(job_id)["status"] != "Canceled" and time.monotonic() < deadline:
			time.sleep(0.3)
		self.assertEqual(self.row(job_id)["status"], "Canceled")

	def _click_action(self, page, label: str, required: bool = True) -> bool:
		"""A button of the form's Actions menu."""
		menu = page.locator(".page-actions button:has-text('Actions'):visible")
		if not menu.count():
			self.assertFalse(required, "the form has an Actions menu")
			return False
		menu.first.click()
		item = page.locator(f".page-actions .dropdown-menu a:has-text('{label}'):visible")
		if not item.count():
			self.assertFalse(required, f"the Actions menu has {label}")
			page.keyboard.press("Escape")
			return False
		item.first.click()
		return True


def _missing_browser() -> str | None:
	if not CHROMIUM:
		return "Chromium is not installed (apt-get install chromium)"
	try:
		import playwright.sync_api  # noqa: F401
	except ImportError:
		return "the playwright package is missing (bench setup requirements --dev)"
	return None


def _serve_site() -> tuple[subprocess.Popen, str]:
	with socket.socket() as probe:
		probe.bind(("127.0.0.1", 0))
		port = probe.getsockname()[1]
	server = subprocess.Popen(
		bench_command("serve", "--port", str(port), "--noreload"),
		cwd=os.path.join(get_bench_path(), SITES_PATH),
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
	)
	base_url = f"http://127.0.0.1:{port}"
	deadline = time.monotonic() + 60
	while time.monotonic() < deadline:
		with contextlib.suppress(OSError):
			urllib.request.urlopen(f"{base_url}/api/method/ping", timeout=2)
			return server, base_url
		time.sleep(0.3)
	server.kill()
	raise AssertionError("the site's web server did not answer within 60 s")
