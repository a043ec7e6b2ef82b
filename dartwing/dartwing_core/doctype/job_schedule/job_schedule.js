// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// Shared helpers (escaping, status colours, time formatting) live in public/js/dartwing_jobs.js.
frappe.provide("dartwing.jobs");

const SCHEDULE_API = "dartwing.dartwing_core.api.schedules.";

frappe.ui.form.on("Job Schedule", {
	onload(frm) {
		frm.set_query("job_type", () => ({ filters: { is_enabled: 1 } }));
	},

	refresh(frm) {
		if (frm.is_new()) {
			frm.set_intro(
				__("Give a cron expression (5 fields, in the time zone below) or an interval in seconds."),
				"blue"
			);
			return;
		}
		frm.page.set_indicator(
			frm.doc.enabled ? __("Enabled") : __("Paused"),
			frm.doc.enabled ? "green" : "orange"
		);
		render_preview(frm);
		add_action_buttons(frm);
	},
});

function schedule_call(method, args, post) {
	return frappe.xcall(SCHEDULE_API + method, args, post ? "POST" : "GET");
}

// The next five run times (in the user's zone and the schedule's) and the jobs it created,
// as the engine computes them (get_schedule): every value escaped.
function render_preview(frm) {
	const jobs = dartwing.jobs;
	const esc = jobs.esc;
	const $wrapper = frm.get_field("preview").$wrapper;
	$wrapper.html(`<div class="text-muted">${esc(__("Loading…"))}</div>`);
	schedule_call("get_schedule", { schedule_id: frm.doc.name })
		.then((schedule) => {
			const zone = schedule.time_zone;
			const in_zone = (value) =>
				moment.tz && zone ? moment(value).tz(zone).format("YYYY-MM-DD HH:mm z") : value;
			const upcoming = schedule.upcoming.length
				? schedule.upcoming
						.map(
							(value) => `<li>${esc(jobs.format_time(value))}
								<span class="text-muted">(${esc(in_zone(value))}, ${esc(jobs.relative_time(value))})</span></li>`
						)
						.join("")
				: `<li class="text-muted">${esc(__("None: the schedule is paused."))}</li>`;
			const rows = schedule.jobs.length
				? schedule.jobs
						.map(
							(job) => `<tr>
								<td><a href="/app/background-job/${encodeURIComponent(job.job_id)}">${esc(job.job_id)}</a></td>
								<td>${jobs.indicator_pill(job.status)}</td>
								<td>${esc(jobs.format_time(job.created_at))}</td>
							</tr>`
						)
						.join("")
				: `<tr><td colspan="3" class="text-muted">${esc(__("No jobs yet."))}</td></tr>`;
			$wrapper.html(`
				<div class="row">
					<div class="col-sm-5">
						<h6>${esc(__("Next five runs"))}</h6>
						<ol>${upcoming}</ol>
					</div>
					<div class="col-sm-7">
						<h6>${esc(__("Jobs it created (latest first)"))}</h6>
						<table class="table table-sm">
							<thead><tr>
								<th>${esc(__("Job"))}</th><th>${esc(__("Status"))}</th><th>${esc(__("Created"))}</th>
							</tr></thead>
							<tbody>${rows}</tbody>
						</table>
					</div>
				</div>`);
		})
		.catch(() => $wrapper.html(""));
}

function add_action_buttons(frm) {
	const jobs = dartwing.jobs;
	const doc = frm.doc;
	// Mirrors the API: the user its jobs run as, or an admin.
	if (doc.owner_user !== frappe.session.user && !jobs.is_admin()) return;
	const act = (method, message, post_action) =>
		schedule_call(method, { schedule_id: doc.name }, true)
			.then((result) => {
				frappe.show_alert({ message, indicator: "green" });
				if (post_action) post_action(result);
			})
			.finally(() => frm.reload_doc());

	frm.add_custom_button(
		doc.enabled ? __("Pause") : __("Resume"),
		() =>
			doc.enabled
				? act("pause_schedule", __("Schedule paused"))
				: act("resume_schedule", __("Schedule resumed; runs missed while paused are not made up")),
		__("Actions")
	);
	frm.add_custom_button(
		__("Run Now"),
		() =>
			frappe.confirm(__("Create a job of this schedule now?"), () =>
				act("run_schedule_now", __("Job created"), (job) =>
					frappe.set_route("Form", "Background Job", job.job_id)
				)
			),
		__("Actions")
	);
	frm.add_custom_button(
		__("Delete"),
		() =>
			frappe.confirm(
				__("Delete schedule {0}? The jobs it created stay.", [`<b>${jobs.esc(doc.name)}</b>`]),
				() =>
					schedule_call("delete_schedule", { schedule_id: doc.name }, true).then(() => {
						frappe.show_alert({ message: __("Schedule deleted"), indicator: "green" });
						frappe.set_route("List", "Job Schedule");
					})
			),
		__("Actions")
	);
}
