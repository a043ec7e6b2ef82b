// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// Frappe evaluates page scripts as global scripts, so everything lives on dartwing.jobs rather
// than in top-level const/class declarations that would clash if evaluated twice.
frappe.provide("dartwing.jobs");

dartwing.jobs.JobMonitor = class JobMonitor {
	constructor(wrapper) {
		this.wrapper = wrapper;
		this.page = frappe.ui.make_app_page({
			parent: wrapper,
			title: __("Job Monitor"),
			single_column: true,
		});
		this.REFRESH_MS = 10000;
		this.MAX_FAILURES = 3;
		this.charts = {};
		this.failures = 0;
		this.visible = false;

		this.on_realtime = this.on_realtime.bind(this);
		this.schedule_refresh = frappe.utils.debounce(() => {
			if (this.visible) this.refresh({ silent: true });
		}, 1500);

		this.make_toolbar();
		this.make_body();

		// Frappe triggers "hide" on the page wrapper when routing away.
		$(wrapper).on("hide", () => this.stop());
	}

	make_toolbar() {
		this.org_field = this.page.add_field({
			fieldname: "organization",
			label: __("Organization"),
			fieldtype: "Link",
			options: "Organization",
			change: () => this.refresh(),
		});
		this.page.set_primary_action(__("Refresh"), () => this.refresh(), "refresh");
		this.page.add_inner_button(__("Background Jobs"), () =>
			frappe.set_route("List", "Background Job", this.route_filters())
		);
	}

	make_body() {
		const esc = dartwing.jobs.esc;
		const card = (title, body, extra = "") =>
			`<div class="frappe-card p-4 mb-4 ${extra}">
				<div class="d-flex justify-content-between align-items-baseline mb-3">
					<h5 class="mb-0">${esc(title)}</h5>
					<span class="text-muted small dw-card-note"></span>
				</div>
				${body}
			</div>`;

		this.$body = $(`<div class="dartwing-job-monitor">
			<div class="dw-error alert alert-danger d-none"></div>
			<div class="text-muted small mb-3 dw-updated"></div>
			${card(
				__("Jobs by Status"),
				`<div class="dw-status-cards" style="display: grid; gap: var(--margin-md);
					grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));"></div>`,
				"dw-status-card"
			)}
			<div class="row">
				<div class="col-md-6">
					${card(__("Queue Depth by Priority"), '<div class="dw-chart-depth"></div>')}
				</div>
				<div class="col-md-6">
					${card(__("Failure Rate by Job Type"), '<div class="dw-chart-failure"></div>', "dw-failure-card")}
				</div>
			</div>
			${card(
				__("Processing Time by Job Type"),
				'<div class="dw-processing-summary mb-2"></div><div class="dw-chart-processing"></div>',
				"dw-processing-card"
			)}
			${card(__("Dead Letter Queue"), '<div class="dw-dead-letter"></div>', "dw-dead-letter-card")}
		</div>`).appendTo(this.page.main);

		this.$body.on("click", "[data-dw-action]", (e) => {
			const $btn = $(e.currentTarget);
			this.on_row_action($btn.attr("data-dw-action"), $btn.attr("data-job-id"));
		});
		this.$body.on("click", ".dw-status-tile", (e) => {
			const status = $(e.currentTarget).attr("data-status");
			const filters = { ...this.route_filters(), status };
			if (!dartwing.jobs.UNFINISHED_STATUSES.includes(status)) {
				// Ended jobs are counted when they ended in the window: list those.
				filters.completed_at = [">=", this.window_start()];
			}
			frappe.set_route("List", "Background Job", filters);
		});
	}

	organization() {
		return this.org_field.get_value() || null;
	}

	window_start() {
		return moment(frappe.datetime.now_datetime())
			.subtract(this.window_hours || 24, "hours")
			.format("YYYY-MM-DD HH:mm:ss");
	}

	route_filters() {
		const organization = this.organization();
		return organization ? { organization } : {};
	}

	// --- lifecycle ------------------------------------------------------------------------

	start() {
		// on_page_show fires on every visit (also re-routing to the page it is on): reset first.
		this.stop();
		this.visible = true;
		this.failures = 0;
		// Status events reach only a job's owner and its form; list_update goes to the Background
		// Job doctype room on every status change, so join it to hear about everyone's jobs (and
		// never leave it: an open list view shares the room).
		frappe.realtime.doctype_subscribe("Background Job");
		frappe.realtime.on("dartwing_job_status", this.on_realtime);
		frappe.realtime.on("list_update", this.on_realtime);
		this.start_timer();
		this.refresh();
	}

	start_timer() {
		clearInterval(this.timer);
		this.timer = setInterval(() => {
			// Skip polls while the browser tab is in the background.
			if (this.visible && !document.hidden) this.refresh({ silent: true });
		}, this.REFRESH_MS);
		this.page.set_indicator(__("Live"), "green");
	}

	stop() {
		this.visible = false;
		if (this.timer) {
			clearInterval(this.timer);
			this.timer = null;
		}
		frappe.realtime.off("dartwing_job_status", this.on_realtime);
		frappe.realtime.off("list_update", this.on_realtime);
	}

	on_realtime(data) {
		if (!this.visible || !data) return;
		if (data.doctype !== undefined && data.doctype !== "Background Job") return;
		const organization = this.organization();
		if (organization && data.organization && data.organization !== organization) return;
		this.schedule_refresh();
	}

	// --- data -----------------------------------------------------------------------------

	refresh(opts = {}) {
		// One request pair at a time; a refresh asked for meanwhile runs once it is done.
		if (this.loading) {
			this.pending = true;
			return;
		}
		this.loading = true;
		const jobs = dartwing.jobs;
		const organization = this.organization();
		const silent = !!opts.silent;

		Promise.all([
			jobs.call("get_job_metrics", { organization }, { silent }),
			jobs.call(
				"list_jobs",
				{ organization, status: "Dead Letter", limit: 50, offset: 0 },
				{ silent }
			),
		])
			.then(([metrics, dead]) => {
				this.failures = 0;
				this.set_error(null);
				// A manual refresh that works resumes a paused auto refresh.
				if (this.visible && !this.timer) this.start_timer();
				// Charts measure their container; rendering while hidden draws them zero-wide.
				if (!this.visible) return;
				this.render(metrics || {}, dead || {});
			})
			.catch(() => {
				this.failures += 1;
				this.set_error(__("Could not load the job metrics."));
				if (this.failures >= this.MAX_FAILURES && this.timer) {
					clearInterval(this.timer);
					this.timer = null;
					this.page.set_indicator(__("Paused"), "gray");
					this.set_error(
						__("Auto refresh paused after repeated errors. Use Refresh to try again.")
					);
				}
			})
			.finally(() => {
				this.loading = false;
				if (this.pending) {
					this.pending = false;
					if (this.visible) this.refresh({ silent: true });
				}
			});
	}

	set_error(message) {
		this.$body
			.find(".dw-error")
			.toggleClass("d-none", !message)
			.text(message || "");
	}

	// --- rendering ------------------------------------------------------------------------

	render(metrics, dead) {
		this.window_hours = metrics.window_hours;
		this.render_status_cards(metrics.job_count_by_status || {});
		this.render_depth(metrics.queue_depth_by_priority || {});
		this.render_failure_rate(metrics.failure_rate_by_type || {}, metrics.window_hours);
		this.render_processing(metrics.processing_time || {}, metrics.window_hours);
		this.render_dead_letter(dead);
		this.$body
			.find(".dw-updated")
			.text(__("Updated {0}", [moment().format(frappe.datetime.get_user_time_fmt())]));
	}

	render_status_cards(counts) {
		const jobs = dartwing.jobs;
		const esc = jobs.esc;
		const statuses = jobs.STATUSES.concat(
			Object.keys(counts).filter((s) => !jobs.STATUSES.includes(s))
		);
		const tile = (status) => {
			const ended = !jobs.UNFINISHED_STATUSES.includes(status);
			const title = esc(
				ended
					? __("Open {0} jobs that ended in the last {1} hours", [__(status), this.window_hours])
					: __("Open {0} jobs", [__(status)])
			);
			const note = ended
				? `<div class="text-muted small">${esc(__("last {0} h", [this.window_hours]))}</div>`
				: "";
			const count = esc(cint(counts[status]).toLocaleString());
			return `<div class="widget number-widget-box dw-status-tile"
				data-status="${esc(status)}" title="${title}">
				<div class="widget-head"><div class="widget-label"><div class="widget-title">
					<span class="indicator ${jobs.status_color(status)}">${esc(__(status))}</span>
				</div></div></div>
				<div class="widget-body"><div class="widget-content">
					<div class="number">${count}</div>${note}
				</div></div>
			</div>`;
		};
		this.$body.find(".dw-status-cards").html(statuses.map(tile).join(""));
	}

	render_depth(depth) {
		const jobs = dartwing.jobs;
		const labels = jobs.PRIORITIES.concat(
			Object.keys(depth).filter((p) => !jobs.PRIORITIES.includes(p))
		);
		const values = labels.map((p) => cint(depth[p]));
		const total = values.reduce((a, b) => a + b, 0);
		this.$body
			.find(".dw-chart-depth")
			.closest(".frappe-card")
			.find(".dw-card-note")
			.text(__("{0} queued", [total]));
		this.render_chart("depth", ".dw-chart-depth", {
			labels: labels.map((p) => __(p)),
			datasets: [{ name: __("Queued"), values }],
			colors: ["blue"],
			format: (v) => __("{0} jobs", [v]),
			empty: false,
		});
	}

	render_failure_rate(rates, window_hours) {
		const types = Object.keys(rates).sort();
		const values = types.map((t) => flt(JobMonitor.failure_percent(rates[t]), 1));
		this.set_window_note(".dw-failure-card", window_hours);
		this.render_chart("failure", ".dw-chart-failure", {
			labels: types,
			datasets: [{ name: __("Failure Rate (%)"), values }],
			colors: ["red"],
			format: (v) => flt(v, 1) + "%",
			empty: !types.length,
			empty_message: __("No jobs ended in this window."),
		});
	}

	render_processing(processing, window_hours) {
		const jobs = dartwing.jobs;
		const esc = jobs.esc;
		// collect() puts the overall figures at the top level next to by_job_type; accept an
		// "overall" sub-dict as well.
		const overall = processing.overall || processing;
		const by_type = processing.by_job_type || {};
		const types = Object.keys(by_type)
			.filter((t) => by_type[t] && cint(by_type[t].count) > 0)
			.sort();

		this.set_window_note(".dw-processing-card", window_hours);
		this.$body.find(".dw-processing-summary").html(
			cint(overall.count)
				? `<span class="text-muted">${esc(__("All completed jobs"))}:</span>
					<b>${esc(cint(overall.count).toLocaleString())}</b> ·
					<span class="text-muted">${esc(__("average"))}</span>
					<b>${esc(jobs.format_duration(overall.average_seconds))}</b> ·
					<span class="text-muted">${esc(__("p95"))}</span>
					<b>${esc(jobs.format_duration(overall.p95_seconds))}</b>`
				: ""
		);
		this.render_chart("processing", ".dw-chart-processing", {
			labels: types,
			datasets: [
				{
					name: __("Average (s)"),
					values: types.map((t) => flt(by_type[t].average_seconds, 2)),
				},
				{ name: __("p95 (s)"), values: types.map((t) => flt(by_type[t].p95_seconds, 2)) },
			],
			colors: ["blue", "orange"],
			format: (v) => jobs.format_duration(v),
			empty: !types.length,
			empty_message: __("No jobs completed in this window."),
		});
	}

	set_window_note(card_selector, window_hours) {
		if (!window_hours) return;
		this.$body
			.find(card_selector)
			.find(".dw-card-note")
			.text(__("Last {0} hours", [flt(window_hours, 1)]));
	}

	render_chart(key, selector, opts) {
		const $container = this.$body.find(selector);
		let $chart = $container.find(".dw-chart");
		let $empty = $container.find(".dw-chart-empty");
		if (!$chart.length) {
			$chart = $('<div class="dw-chart"></div>').appendTo($container);
			$empty = $('<div class="dw-chart-empty text-muted py-5 text-center"></div>').appendTo(
				$container
			);
		}

		if (opts.empty) {
			$chart.addClass("d-none");
			$empty.removeClass("d-none").text(opts.empty_message || __("No data"));
			return;
		}
		$empty.addClass("d-none");
		$chart.removeClass("d-none");

		const data = { labels: opts.labels, datasets: opts.datasets };
		const previous = this.charts[key];
		// Update in place when the shape is unchanged: recreating every poll would flicker and
		// leave each old chart's window resize listener behind.
		if (previous && previous.labels_key === JSON.stringify(opts.labels)) {
			previous.chart.update(data);
			return;
		}
		$chart.empty();
		const chart = new frappe.Chart($chart[0], {
			data,
			type: "bar",
			height: 240,
			colors: opts.colors,
			axisOptions: { xIsSeries: 0, shortenYAxisNumbers: 1 },
			barOptions: { spaceRatio: 0.4 },
			// Axis labels are SVG text (set as textContent), but the tooltip title is set with
			// innerHTML: escape the labels (job type names, priorities) there only.
			tooltipOptions: {
				formatTooltipX: (label) => dartwing.jobs.esc(label),
				formatTooltipY: opts.format,
			},
		});
		this.charts[key] = { chart, labels_key: JSON.stringify(opts.labels) };
	}

	render_dead_letter(result) {
		const jobs = dartwing.jobs;
		const esc = jobs.esc;
		const rows = result.jobs || [];
		const total = cint(result.total || rows.length);
		const $card = this.$body.find(".dw-dead-letter-card");
		$card
			.find(".dw-card-note")
			.text(
				total > rows.length
					? __("Showing {0} of {1}", [rows.length, total])
					: __("{0} jobs", [total])
			);

		if (!rows.length) {
			const empty = esc(__("The dead letter queue is empty."));
			$card
				.find(".dw-dead-letter")
				.html(`<div class="text-muted py-4 text-center">${empty}</div>`);
			return;
		}

		const body = rows
			.map((job) => {
				const id = esc(job.job_id);
				const when = job.completed_at || job.modified_at;
				const max = job.max_retries === null || job.max_retries === undefined;
				const attempts = `${cint(job.retry_count)} / ${max ? "–" : cint(job.max_retries)}`;
				const error_color = job.error_type === "Transient" ? "orange" : "red";
				const error_pill = job.error_type
					? `<span class="indicator-pill ${error_color} mr-1">${esc(__(job.error_type))}</span>`
					: "";
				return `<tr>
					<td><a href="/app/background-job/${encodeURIComponent(job.job_id)}">${id}</a></td>
					<td>${esc(job.job_type || "")}</td>
					<td>${esc(job.organization || "")}</td>
					<td style="max-width: 360px;">
						${error_pill}
						<span class="ellipsis d-inline-block align-middle" style="max-width: 100%;"
							title="${esc(job.error_message || "")}">${esc(job.error_message || "")}</span>
					</td>
					<td class="text-muted">${esc(attempts)}</td>
					<td title="${esc(when || "")}">${esc(jobs.format_time(when))}</td>
					<td class="text-right text-nowrap">
						<button class="btn btn-xs btn-default" data-dw-action="retry" data-job-id="${id}">
							${esc(__("Retry"))}
						</button>
						<button class="btn btn-xs btn-danger ml-1" data-dw-action="delete" data-job-id="${id}">
							${esc(__("Delete"))}
						</button>
					</td>
				</tr>`;
			})
			.join("");

		$card.find(".dw-dead-letter").html(`<div class="table-responsive">
			<table class="table table-sm table-hover mb-0">
				<thead><tr>
					<th>${esc(__("Job"))}</th>
					<th>${esc(__("Job Type"))}</th>
					<th>${esc(__("Organization"))}</th>
					<th>${esc(__("Error"))}</th>
					<th>${esc(__("Attempts"))}</th>
					<th>${esc(__("Time"))}</th>
					<th></th>
				</tr></thead>
				<tbody>${body}</tbody>
			</table>
		</div>`);
	}

	// collect() gives a fraction (dead / ended); tolerate a dict or a percentage too.
	static failure_percent(value) {
		if (value === null || value === undefined) return 0;
		if (typeof value === "object") {
			for (const key of ["failure_rate", "rate", "ratio"]) {
				if (value[key] !== undefined && value[key] !== null) {
					return JobMonitor.failure_percent(value[key]);
				}
			}
			const failed = flt(value.failed ?? value.dead ?? value.dead_letter);
			const total = flt(value.total ?? value.ended ?? flt(value.completed) + failed);
			return total ? (failed / total) * 100 : 0;
		}
		const number = flt(value);
		return number <= 1 ? number * 100 : number;
	}

	// --- actions --------------------------------------------------------------------------

	on_row_action(action, job_id) {
		const jobs = dartwing.jobs;
		if (!job_id) return;
		const name = `<b>${jobs.esc(job_id)}</b>`;
		const run = (method, done) =>
			jobs
				.call(method, { job_id }, { type: "POST", freeze: true })
				.then(() => frappe.show_alert({ message: done, indicator: "green" }))
				.catch(() => {})
				.finally(() => this.refresh());

		if (action === "retry") {
			frappe.confirm(__("Retry job {0}? It goes back to the queue.", [name]), () =>
				run("retry_job", __("Job {0} queued again", [jobs.esc(job_id)]))
			);
		} else if (action === "delete") {
			frappe.confirm(
				__("Delete job {0} and its execution history? This cannot be undone.", [name]),
				() => run("delete_job", __("Job {0} deleted", [jobs.esc(job_id)]))
			);
		}
	}
};

frappe.pages["job-monitor"].on_page_load = function (wrapper) {
	// The status colours and API helpers load with every desk page (public/js/dartwing_jobs.js).
	wrapper.job_monitor = new dartwing.jobs.JobMonitor(wrapper);
};

frappe.pages["job-monitor"].on_page_show = function (wrapper) {
	// Every visit, the first one included (Frappe shows the page after loading it).
	wrapper.job_monitor.start();
};
