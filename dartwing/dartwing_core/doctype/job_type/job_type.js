// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// Pause / Resume of a job type (admins): its queued jobs wait and its running ones pause at their
// next checkpoint, until it is resumed; submits are still taken. The flag is the engine's to set
// (api.jobs.pause_job_type), so the form offers the actions rather than an editable checkbox.
frappe.ui.form.on("Job Type", {
	refresh(frm) {
		if (frm.is_new() || !dartwing.jobs.is_admin()) return;
		const jobs = dartwing.jobs;
		const paused = cint(frm.doc.is_paused);
		if (paused) {
			frm.dashboard.set_headline(
				__("Paused: its queued jobs wait and its running ones pause at their next checkpoint.")
			);
		}
		frm.add_custom_button(
			paused ? __("Resume") : __("Pause"),
			() => {
				const act = () =>
					jobs.call(
						"pause_job_type",
						{ job_type: frm.doc.name, paused: paused ? 0 : 1 },
						{ type: "POST", freeze: true }
					)
						.then((answer) => {
							const message = paused
								? __("Job type resumed; {0} paused jobs queued again", [
										cint(answer && answer.resumed_jobs),
									])
								: __("Job type paused");
							frappe.show_alert({ message, indicator: paused ? "green" : "yellow" });
						})
						.catch(() => {})
						.finally(() => frm.reload_doc());
				if (paused) {
					act();
				} else {
					frappe.confirm(
						__("Pause job type {0}? Its running jobs pause at their next checkpoint.", [
							`<b>${jobs.esc(frm.doc.name)}</b>`,
						]),
						act
					);
				}
			},
			__("Actions")
		);
	},
});
