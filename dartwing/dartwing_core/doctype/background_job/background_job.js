// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// Shared helpers (status colours, API calls, formatting) live in public/js/dartwing_jobs.js,
// which every desk page loads (hooks.py app_include_js).
frappe.provide("dartwing.jobs");

const JOB_EVENTS = ["dartwing_job_status", "dartwing_job_progress"];

frappe.ui.form.on("Background Job", {
	setup(frm) {
		const jobs = dartwing.jobs;
		jobs.escape_data_fields("Background Job Step"); // the Steps table: names the handler chose
		// The Form object is reused for every job opened, so one listener suffices; drop any
		// listener of an earlier Form instance (re-created after a meta reload) instead of stacking.
		if (jobs.form_listener) {
			JOB_EVENTS.forEach((event) => frappe.realtime.off(event, jobs.form_listener));
		}
		jobs.form_listener = (job) => on_job_event(frm, job);
		JOB_EVENTS.forEach((event) => frappe.realtime.on(event, jobs.form_listener));
	},

	onload(frm) {
		// The new-job form: only enabled job types; organizations are those the user may reach
		// (the link search applies the tenancy rules).
		frm.set_query("job_type", () => ({ filters: { is_enabled: 1 } }));
		// Empty priority: the job type's default applies (the field's own default is for rows
		// written without one).
		if (frm.is_new() && !frm.doc.__dw_priority_cleared) {
			frm.doc.__dw_priority_cleared = true;
			frm.doc.priority = "";
		}
	},

	job_type(frm) {
		if (frm.is_new()) show_parameter_hint(frm);
	},

	refresh(frm) {
		if (frm.is_new()) {
			frm.set_intro(
				__("Save submits the job; this form then follows it live."),
				"blue"
			);
			if (frm.doc.job_type) show_parameter_hint(frm);
			return;
		}
		const jobs = dartwing.jobs;
		// A job changes only through its actions; the server refuses saves, so offer none.
		frm.disable_save();
		frm.set_read_only();
		// One progress display: the live bar above; the stored fields lag behind it.
		frm.toggle_display(["section_progress", "progress", "progress_message"], false);
		frm.set_df_property("input_parameters", "description", "");

		// page.set_indicator puts its label into HTML as is.
		frm.page.set_indicator(jobs.esc(__(frm.doc.status)), jobs.status_color(frm.doc.status));

		// dashboard.refresh() removes ".custom" sections before "refresh" runs, so rebuild them.
		render_progress_section(frm);
		render_details_section(frm);
		render_history_section(frm);
		// add_section does not unhide the dashboard wrapper; Frappe's own callers do this too.
		frm.dashboard.show();
		add_action_buttons(frm);

		if (jobs.UNFINISHED_STATUSES.includes(frm.doc.status)) {
			// The doc has no ETA and its progress is persisted less often than it is published.
			const name = frm.doc.name;
			jobs.call("get_job_status", { job_id: name }, { silent: true })
				.then((job) => {
					if (job && frm.doc.name === name) on_job_event(frm, job);
				})
				.catch(() => {});
		}
	},
});

// --- the new-job form --------------------------------------------------------------------------

function show_parameter_hint(frm) {
	const job_type = frm.doc.job_type;
	dartwing.jobs
		.call("get_job_type_parameters", { job_type }, { silent: true })
		.then((info) => {
			if (!info || frm.doc.job_type !== job_type || !frm.is_new()) return;
			const esc = dartwing.jobs.esc;
			const names = info.parameters.map((p) =>
				p.required ? `<b>${esc(p.name)}</b>` : `${esc(p.name)} = ${esc(JSON.stringify(p.default))}`
			);
			const hint = names.length
				? __("Parameters: {0}. Bold ones are required.", [names.join(", ")])
				: __("This job type takes no parameters.");
			frm.set_df_property("input_parameters", "description", hint);
			frm.set_df_property(
				"priority",
				"description",
				__("Empty: {0}, the job type's default.", [esc(__(info.default_priority))])
			);
			if (!frm.doc.input_parameters) {
				const defaults = {};
				info.parameters.forEach((p) => (defaults[p.name] = p.required ? null : p.default));
				frm.set_value("input_parameters", JSON.stringify(defaults, null, 2));
			}
		})
		.catch(() => {});
}

function on_job_event(frm, job) {
	if (!job || !frm.doc || frm.is_new() || job.job_id !== frm.doc.name) return;

	if (job.status && job.status !== frm.doc.status) {
		frm._dw_live = job;
		update_progress(frm, job);
		if (is_form_visible(frm)) {
			frm.page.set_indicator(
				dartwing.jobs.esc(__(job.status)),
				dartwing.jobs.status_color(job.status)
			);
			// Status changes are rare: reload so every field (errors, timing, history) is true.
			// Once per job and status, so a lagging read can never make reloads loop.
			const key = job.job_id + "/" + job.status + "/" + (job.modified_at || "");
			if (frm._dw_reloaded_for !== key) {
				frm._dw_reloaded_for = key;
				(frm.debounced_reload_doc || frm.reload_doc).call(frm);
			}
		} else {
			// Frappe reloads a doc flagged like this when its form is shown again.
			frm.doc.__needs_refresh = true;
		}
		return;
	}

	frm._dw_live = job;
	update_progress(frm, job);
	// A step's completion (a history note) changes the row's modified time without a status
	// change: reload, so the Steps table and the details follow the job live.
	const seen = frm._dw_modified_at;
	frm._dw_modified_at = job.modified_at;
	if (seen && job.modified_at && job.modified_at !== seen && is_form_visible(frm)) {
		(frm.debounced_reload_doc || frm.reload_doc).call(frm);
	}
}

function is_form_visible(frm) {
	const route = frappe.get_route() || [];
	return route[0] === "Form" && route[1] === frm.doctype && route[2] === frm.docname;
}

// --- progress -------------------------------------------------------------------------------

function render_progress_section(frm) {
	frm._dw_progress = frm.dashboard.add_section(
		`<div class="dartwing-job-progress">
			<div class="d-flex justify-content-between align-items-baseline mb-2">
				<span class="dw-progress-message text-muted"></span>
				<span class="dw-progress-percent font-weight-bold"></span>
			</div>
			<div class="progress" style="height: 10px;">
				<div class="progress-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100"></div>
			</div>
			<div class="dw-progress-eta text-muted small mt-2"></div>
		</div>`,
		__("Progress"),
		"custom dartwing-job-progress-section"
	);

	// Prefer the last live event for this doc and status: it is fresher than the stored row.
	const live = frm._dw_live;
	const fresh = live && live.job_id === frm.doc.name && live.status === frm.doc.status;
	update_progress(
		frm,
		fresh
			? live
			: {
					job_id: frm.doc.name,
					status: frm.doc.status,
					progress: frm.doc.progress,
					progress_message: frm.doc.progress_message,
					eta_seconds: null,
					depends_on: frm.doc.depends_on,
					started_at: frm.doc.started_at,
					completed_at: frm.doc.completed_at,
					cancel_requested_at: frm.doc.cancel_requested_at,
					pause_requested_at: frm.doc.pause_requested_at,
					run_at: frm.doc.run_at,
				}
	);
}

function update_progress(frm, job) {
	const $area = frm._dw_progress;
	if (!$area || !$area.closest("body").length) return;
	const jobs = dartwing.jobs;

	const percent = Math.max(0, Math.min(100, flt(job.progress)));
	const $bar = $area.find(".progress-bar");
	$bar.removeClass(
		"progress-bar-success progress-bar-danger bg-secondary progress-bar-striped progress-bar-animated"
	)
		.addClass(jobs.progress_bar_class(job.status))
		.css("width", percent + "%")
		.attr("aria-valuenow", percent);
	$area.find(".dw-progress-percent").text(flt(percent, 1) + "%");
	$area.find(".dw-progress-message").text(job.progress_message || "");
	$area.find(".dw-progress-eta").text(eta_text(job));
	if (job.items && cint(job.items.total) && frm._dw_details) {
		frm._dw_details.find(".dw-item-counts").html(item_counts_html(job.items));
	}
}

function eta_text(job) {
	const jobs = dartwing.jobs;
	switch (job.status) {
		case "Running":
			if (job.cancel_requested_at) return __("Cancellation requested, stopping…");
			if (job.pause_requested_at) return __("Pause requested, stopping at the next checkpoint…");
			if (job.eta_seconds !== null && job.eta_seconds !== undefined) {
				return __("About {0} left", [jobs.format_duration(job.eta_seconds)]);
			}
			return __("Estimating time left…");
		case "Queued":
			return __("Waiting for a worker");
		case "Scheduled":
			return __("Runs at {0} ({1})", [jobs.format_time(job.run_at), jobs.relative_time(job.run_at)]);
		case "Paused":
			return __("Paused; Resume continues from its saved steps and items");
		case "Pending":
			return job.depends_on
				? __("Waiting for job {0} to complete", [job.depends_on])
				: __("Waiting to be queued");
		default: {
			const started = jobs.to_moment(job.started_at);
			const ended = jobs.to_moment(job.completed_at);
			if (started && ended && started.isValid() && ended.isValid()) {
				return __("Ran for {0}", [jobs.format_duration(ended.diff(started) / 1000)]);
			}
			return "";
		}
	}
}

// --- attempts, errors and output -----------------------------------------------------------

function render_details_section(frm) {
	const jobs = dartwing.jobs;
	const esc = jobs.esc;
	const doc = frm.doc;
	const rows = [];

	// As users count: "attempt 1 of 4" for a first run with 3 retries allowed.
	// retry_count counts the attempts that failed and were retried: the running one, the one
	// that completed and the last one before Dead Letter come on top of it.
	const allowed = cint(doc.max_retries) + 1;
	const retried = cint(doc.retry_count);
	const ran_now =
		["Running", "Completed", "Dead Letter"].includes(doc.status) ||
		(doc.status === "Canceled" && doc.started_at && !doc.next_retry_at);
	const attempt = ran_now ? retried + 1 : retried;
	rows.push([
		__("Attempts"),
		attempt
			? esc(__("attempt {0} of {1}", [attempt, allowed]))
			: esc(__("not run yet (up to {0})", [allowed])),
	]);

	if (doc.next_retry_at) {
		rows.push([
			__("Next Retry"),
			`${esc(jobs.format_time(doc.next_retry_at))}
			<span class="text-muted">(${esc(jobs.relative_time(doc.next_retry_at))})</span>`,
		]);
	}
	if (doc.cancel_requested_at && !doc.canceled_at) {
		rows.push([__("Cancel Requested"), esc(jobs.format_time(doc.cancel_requested_at))]);
	}
	if (doc.canceled_at) {
		const by = doc.canceled_by ? " " + __("by {0}", [esc(doc.canceled_by)]) : "";
		rows.push([__("Canceled"), esc(jobs.format_time(doc.canceled_at)) + by]);
	}
	if (doc.pause_requested_at && doc.status === "Running") {
		rows.push([__("Pause Requested"), esc(jobs.format_time(doc.pause_requested_at))]);
	}
	if (doc.status === "Paused" && doc.paused_at) {
		const by = doc.paused_by ? " " + __("by {0}", [esc(__(doc.paused_by))]) : "";
		rows.push([__("Paused"), esc(jobs.format_time(doc.paused_at)) + by]);
	}
	if (cint(doc.items_total)) {
		// Live counts come with every progress event (job.items); the stored ones until then.
		const live = (frm._dw_live && frm._dw_live.items) || {
			total: doc.items_total,
			done: doc.items_done,
			failed: doc.items_failed,
			skipped: doc.items_skipped,
		};
		rows.push([__("Items"), `<span class="dw-item-counts">${item_counts_html(live)}</span>`]);
	}
	if (doc.output_reference) {
		rows.push([__("Output"), output_html(doc.output_reference)]);
	}

	const row = ([label, value]) =>
		`<tr><td class="text-muted pl-0 pr-4">${esc(label)}</td><td>${value}</td></tr>`;
	let html = `<table class="table table-sm table-borderless mb-0" style="width: auto;">
		${rows.map(row).join("")}
	</table>`;

	if (doc.error_message || doc.error_type || doc.error_traceback) {
		html += error_html(doc);
	}

	frm._dw_details = frm.dashboard.add_section(
		html,
		__("Attempts and Errors"),
		"custom dartwing-job-details-section"
	);
	frm._dw_details.on("click", ".dw-failed-items", () => show_failed_items(frm));
}

// --- items ------------------------------------------------------------------------------------

function item_counts_html(counts) {
	const esc = dartwing.jobs.esc;
	const failed = cint(counts.failed);
	const text = esc(
		__("{0} of {1} done, {2} skipped,", [cint(counts.done), cint(counts.total), cint(counts.skipped)])
	);
	const failed_text = esc(__("{0} failed", [failed]));
	return failed ? `${text} <a class="dw-failed-items">${failed_text}</a>` : `${text} ${failed_text}`;
}

function show_failed_items(frm) {
	const jobs = dartwing.jobs;
	const esc = jobs.esc;
	const name = frm.doc.name;
	jobs.call("get_job_items", { job_id: name, status: "Failed", limit: 100 })
		.then((page) => {
			if (!page) return;
			const rows = page.items
				.map(
					(item) => `<tr>
						<td>${esc(item.index)}</td>
						<td>${esc(item.key)}</td>
						<td>${esc(item.error_type)}</td>
						<td style="white-space: pre-wrap;">${esc(item.error_message)}</td>
					</tr>`
				)
				.join("");
			const list = `/app/background-job-item?background_job=${encodeURIComponent(name)}&status=Failed`;
			frappe.msgprint({
				title: __("Failed items of {0}", [esc(name)]),
				wide: true,
				message: `<table class="table table-sm">
						<thead><tr><th>#</th><th>${esc(__("Key"))}</th><th>${esc(__("Error"))}</th><th></th></tr></thead>
						<tbody>${rows}</tbody>
					</table>
					<p class="text-muted">${esc(__("{0} of {1}", [page.items.length, page.total]))}
					· <a href="${esc(list)}">${esc(__("All failed items"))}</a></p>`,
			});
		})
		.catch(() => {});
}

function error_html(doc) {
	const esc = dartwing.jobs.esc;
	const type_color = doc.error_type === "Transient" ? "orange" : "red";
	const type_pill = doc.error_type
		? `<span class="indicator-pill ${type_color} ml-2">${esc(__(doc.error_type))}</span>`
		: "";
	// Native <details> keeps the (long) traceback collapsed without any extra wiring.
	const traceback = doc.error_traceback
		? `<details class="mt-2">
			<summary class="text-muted small" style="cursor: pointer;">${esc(__("Traceback"))}</summary>
			<pre class="mt-2 mb-0 small" style="max-height: 400px; overflow: auto;">${esc(
				doc.error_traceback
			)}</pre>
		</details>`
		: "";
	return `<div class="mt-3 p-3 rounded"
		style="background: var(--subtle-fg); border-left: 3px solid var(--red-500);">
		<div class="mb-2"><span class="font-weight-bold">${esc(__("Error"))}</span>${type_pill}</div>
		<div style="white-space: pre-wrap; word-break: break-word;">${esc(doc.error_message)}</div>
		${traceback}
	</div>`;
}

function output_html(reference) {
	const esc = dartwing.jobs.esc;
	const value = String(reference).trim();
	// Only link things that are unambiguously URLs or site paths; anything else is shown as text.
	if (/^https?:\/\/\S+$/i.test(value)) {
		return `<a href="${esc(value)}" target="_blank" rel="noopener noreferrer">${esc(value)}</a>`;
	}
	// A site path, but not "//host" or "/\host", which browsers open as another site.
	if (/^\/(?![\/\\])\S*$/.test(value)) {
		// Desk routes stay in the app; files and other site paths open in a new tab.
		const target = value.startsWith("/app/") ? "" : ' target="_blank" rel="noopener"';
		return `<a href="${esc(value)}"${target}>${esc(value)}</a>`;
	}
	return `<code style="white-space: pre-wrap; word-break: break-all;">${esc(value)}</code>`;
}

// --- execution history ---------------------------------------------------------------------

function render_history_section(frm) {
	const jobs = dartwing.jobs;
	const esc = jobs.esc;
	const $area = frm.dashboard.add_section(
		`<div class="dw-history text-muted">${esc(__("Loading…"))}</div>`,
		__("Execution History"),
		"custom dartwing-job-history-section"
	);
	const name = frm.doc.name;

	jobs.call("get_job_history", { job_id: name }, { silent: true })
		.then((history) => {
			// Skip stale answers: the user may have moved to another job meanwhile.
			if (frm.doc.name !== name || !$area.closest("body").length) return;
			$area.find(".dw-history").replaceWith(history_html(history || {}));
		})
		.catch(() => {
			if (frm.doc.name !== name) return;
			$area
				.find(".dw-history")
				.removeClass("text-muted")
				.addClass("text-danger")
				.text(__("Could not load the execution history."));
		});
}

function history_html(history) {
	const jobs = dartwing.jobs;
	const esc = jobs.esc;
	const entries = history.entries || [];

	const chain = history.chain_valid
		? `<span class="indicator-pill green">${esc(__("Audit chain verified"))}</span>`
		: `<span class="indicator-pill red">${esc(__("Audit chain broken"))}</span>
			<span class="text-danger small ml-2">${esc(history.chain_problem || "")}</span>`;

	if (!entries.length) {
		return `<div class="dw-history"><div class="mb-2">${chain}</div>
			<div class="text-muted">${esc(__("No transitions recorded yet."))}</div></div>`;
	}

	const rows = entries
		.map(
			(e) => `<tr>
				<td class="text-muted">${esc(e.sequence)}</td>
				<td>${e.from_status ? jobs.indicator_pill(e.from_status) : "–"}</td>
				<td>${e.to_status ? jobs.indicator_pill(e.to_status) : "–"}</td>
				<td title="${esc(e.timestamp || "")}">${esc(jobs.format_time(e.timestamp))}</td>
				<td>${esc(e.actor || "")}</td>
				<td class="text-muted">${esc(e.retry_attempt === null ? "" : e.retry_attempt)}</td>
				<td style="white-space: pre-wrap; word-break: break-word;">${esc(e.message || "")}</td>
				<td><code class="small" title="${esc(e.entry_hash || "")}">${esc(
					(e.entry_hash || "").slice(0, 10)
				)}</code></td>
			</tr>`
		)
		.join("");

	return `<div class="dw-history">
		<div class="mb-2">${chain}</div>
		<div class="table-responsive">
			<table class="table table-sm table-bordered mb-0">
				<thead><tr>
					<th>#</th>
					<th>${esc(__("From"))}</th>
					<th>${esc(__("To"))}</th>
					<th>${esc(__("Time"))}</th>
					<th>${esc(__("Actor"))}</th>
					<th>${esc(__("Attempt"))}</th>
					<th>${esc(__("Message"))}</th>
					<th>${esc(__("Hash"))}</th>
				</tr></thead>
				<tbody>${rows}</tbody>
			</table>
		</div>
	</div>`;
}

// --- actions -------------------------------------------------------------------------------

function add_action_buttons(frm) {
	const jobs = dartwing.jobs;
	const doc = frm.doc;
	// Mirrors cancel_job: the submitting user (owner_user, not the row's creator) or an admin.
	const is_owner = doc.owner_user === frappe.session.user;

	const cancel_pending = doc.status === "Running" && doc.cancel_requested_at;
	if (jobs.UNFINISHED_STATUSES.includes(doc.status) && !cancel_pending && (is_owner || jobs.is_admin())) {
		frm.add_custom_button(
			__("Cancel"),
			() => {
				frappe.confirm(__("Cancel job {0}?", [`<b>${jobs.esc(doc.name)}</b>`]), () => {
					jobs.call("cancel_job", { job_id: doc.name }, { type: "POST", freeze: true })
						.then((job) => {
							const message =
								job && job.status === "Running"
									? __(
											"Cancellation requested; the job stops at its next checkpoint."
										)
									: __("Job canceled");
							frappe.show_alert({ message, indicator: "orange" });
						})
						.catch(() => {})
						.finally(() => frm.reload_doc());
				});
			},
			__("Actions")
		);
	}

	// Pause and resume: as cancel, the submitting user or an admin.
	const may_act = is_owner || jobs.is_admin();
	const pause_pending = doc.status === "Running" && doc.pause_requested_at;
	if (jobs.PAUSABLE_STATUSES.includes(doc.status) && !pause_pending && !cancel_pending && may_act) {
		frm.add_custom_button(
			__("Pause"),
			() => {
				jobs.call("pause_job", { job_id: doc.name }, { type: "POST", freeze: true })
					.then((job) => {
						const message =
							job && job.status === "Running"
								? __("Pause requested; the job stops at its next checkpoint.")
								: __("Job paused");
						frappe.show_alert({ message, indicator: "yellow" });
					})
					.catch(() => {})
					.finally(() => frm.reload_doc());
			},
			__("Actions")
		);
	}
	if (doc.status === "Paused" && may_act) {
		frm.add_custom_button(
			__("Resume"),
			() => {
				jobs.call("resume_job", { job_id: doc.name }, { type: "POST", freeze: true })
					.then(() => frappe.show_alert({ message: __("Job resumed"), indicator: "green" }))
					.catch(() => {})
					.finally(() => frm.reload_doc());
			},
			__("Actions")
		);
	}

	if (jobs.RETRYABLE_STATUSES.includes(doc.status) && jobs.is_admin() && cint(doc.items_failed)) {
		frm.add_custom_button(
			__("Retry failed items"),
			() => {
				frappe.confirm(
					__("Run the {0} failed items of job {1} again?", [
						cint(doc.items_failed),
						`<b>${jobs.esc(doc.name)}</b>`,
					]),
					() => {
						jobs.call(
							"retry_job",
							{ job_id: doc.name, failed_items_only: 1 },
							{ type: "POST", freeze: true }
						)
							.then(() =>
								frappe.show_alert({
									message: __("Failed items queued again"),
									indicator: "green",
								})
							)
							.catch(() => {})
							.finally(() => frm.reload_doc());
					}
				);
			},
			__("Actions")
		);
	}

	if (jobs.RETRYABLE_STATUSES.includes(doc.status) && jobs.is_admin()) {
		frm.add_custom_button(
			__("Retry"),
			() => {
				jobs.call("retry_job", { job_id: doc.name }, { type: "POST", freeze: true })
					.then(() =>
						frappe.show_alert({ message: __("Job queued again"), indicator: "green" })
					)
					.catch(() => {})
					.finally(() => frm.reload_doc());
			},
			__("Actions")
		);
	}
}
