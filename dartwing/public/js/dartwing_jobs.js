// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// Helpers shared by the Background Job list, the form and the Job Monitor page: loaded on every
// desk page (hooks.py app_include_js), so none of them depends on another's load order.
frappe.provide("dartwing.jobs");

Object.assign(dartwing.jobs, {
	API: "dartwing.dartwing_core.api.jobs.",

	// The one status -> indicator colour map (list, form indicator, monitor cards).
	STATUS_COLORS: {
		Scheduled: "purple",
		Pending: "gray",
		Queued: "blue",
		Running: "orange",
		Completed: "green",
		Failed: "red",
		"Timed Out": "red",
		Canceled: "darkgrey",
		"Dead Letter": "red",
		Paused: "yellow",
	},
	// The engine's own state rules (states.py), sent with the desk's boot (dartwing_core/boot.py):
	// no copy here to drift from what the engine accepts.
	STATUSES: frappe.boot.dartwing_jobs.statuses,
	// Scheduled, Pending, Queued, Running, Paused, and Failed/Timed Out waiting for a retry: may change,
	// may be canceled.
	UNFINISHED_STATUSES: frappe.boot.dartwing_jobs.unfinished,
	RETRYABLE_STATUSES: frappe.boot.dartwing_jobs.admin_retryable,
	PAUSABLE_STATUSES: frappe.boot.dartwing_jobs.pausable,
	PRIORITIES: frappe.boot.dartwing_jobs.priorities.slice().reverse(), // lowest first, for charts

	status_color(status) {
		// Own keys only: a status such as "constructor" must not pick up an Object builtin.
		const colors = dartwing.jobs.STATUS_COLORS;
		return Object.prototype.hasOwnProperty.call(colors, status) ? colors[status] : "gray";
	},

	is_admin() {
		return frappe.user.has_role(["System Manager", "Dartwing Admin"]);
	},

	esc(value) {
		// frappe.utils.escape_html turns 0 into "", so stringify first.
		return frappe.utils.escape_html(value == null ? "" : String(value));
	},

	// Frappe shows Data fields as HTML (its formatter does not escape: a save sanitises them);
	// the engine writes these doctypes' rows without a save, so their text is escaped as shown,
	// in grids, forms and lists. Call once the doctype's meta is loaded.
	escape_data_fields(doctype) {
		const fields = frappe.meta.docfield_map[doctype] || {};
		for (const df of Object.values(fields)) {
			if (df.fieldtype === "Data") df.formatter = (value) => dartwing.jobs.esc(value);
		}
	},

	// Promise over frappe.call; reads are GET so GET-only whitelisting works too.
	call(method, args, opts = {}) {
		const clean = {};
		for (const [key, value] of Object.entries(args || {})) {
			// Omit empty filters: jQuery would send them as "" instead of leaving the default.
			if (value !== null && value !== undefined && value !== "") clean[key] = value;
		}
		return new Promise((resolve, reject) => {
			frappe.call({
				method: dartwing.jobs.API + method,
				args: clean,
				type: opts.type || "GET",
				freeze: opts.freeze,
				silent: opts.silent,
				callback: (r) => resolve(r.message),
				error: (r) => reject(r),
			});
		});
	},

	// API timestamps are ISO 8601 with an offset; doc fields are naive in the system time zone.
	to_moment(value) {
		if (!value) return null;
		if (typeof value === "string" && value.indexOf("T") === -1 && moment.tz) {
			const tz = frappe.boot.time_zone && frappe.boot.time_zone.system;
			return tz ? moment.tz(value, tz) : moment(value);
		}
		return moment(value);
	},

	format_time(value) {
		const m = dartwing.jobs.to_moment(value);
		if (!m || !m.isValid()) return "";
		const user_tz = frappe.boot.time_zone && frappe.boot.time_zone.user;
		const fmt =
			frappe.datetime.get_user_date_fmt().toUpperCase() +
			" " +
			frappe.datetime.get_user_time_fmt();
		return (user_tz && m.tz ? m.clone().tz(user_tz) : m).format(fmt);
	},

	format_duration(seconds) {
		if (seconds === null || seconds === undefined || isNaN(seconds)) return "–";
		seconds = Number(seconds);
		if (seconds < 10) return __("{0} s", [seconds.toFixed(seconds < 1 ? 2 : 1)]);
		if (seconds < 60) return __("{0} s", [Math.round(seconds)]);
		const minutes = Math.floor(seconds / 60);
		if (minutes < 60) return __("{0} m {1} s", [minutes, Math.round(seconds % 60)]);
		const hours = Math.floor(minutes / 60);
		if (hours < 48) return __("{0} h {1} m", [hours, minutes % 60]);
		return __("{0} d {1} h", [Math.floor(hours / 24), hours % 24]);
	},

	// Relative to now, both ways ("in 3 m 2 s" / "3 m 2 s ago").
	relative_time(value) {
		const m = dartwing.jobs.to_moment(value);
		if (!m || !m.isValid()) return "";
		const diff = m.diff(moment(), "seconds");
		if (Math.abs(diff) < 5) return __("now");
		const span = dartwing.jobs.format_duration(Math.abs(diff));
		return diff > 0 ? __("in {0}", [span]) : __("{0} ago", [span]);
	},

	indicator_pill(status) {
		return `<span class="indicator-pill ${dartwing.jobs.status_color(status)}">${dartwing.jobs.esc(
			__(status)
		)}</span>`;
	},

	// The list view's own Link column markup (ListView.get_column_html), with every value escaped.
	link_column_html(value, df, doc) {
		const esc = dartwing.jobs.esc;
		value = value || "";
		let shown = value;
		const meta = df.options && frappe.get_meta(df.options);
		if (
			meta &&
			meta.show_title_field_in_link &&
			(frappe.boot.link_title_doctypes || []).includes(df.options)
		) {
			shown = doc[df.fieldname + "_" + meta.title_field] || value;
		}
		if ((frappe.boot.translated_doctypes || []).includes(df.options)) {
			shown = __(shown);
		}
		return `<span class="ellipsis" title="${esc(__(df.label))}: ${esc(shown)}">
			<a class="filterable ellipsis" data-filter="${esc(df.fieldname + ",=," + value)}">
				${esc(shown)}
			</a>
		</span>`;
	},

	progress_bar_class(status) {
		if (status === "Completed") return "progress-bar-success";
		if (["Failed", "Timed Out", "Dead Letter"].includes(status)) return "progress-bar-danger";
		if (status === "Canceled") return "bg-secondary";
		if (status === "Running") return "progress-bar-striped progress-bar-animated";
		return "";
	},
});
