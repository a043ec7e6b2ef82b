// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

frappe.listview_settings["Background Job"] = {
	add_fields: ["status", "progress", "job_type", "organization", "progress_message"],

	get_indicator(doc) {
		if (!doc.status) return;
		// Frappe puts all three parts into HTML unescaped (list pill and its single-quoted
		// data-filter, form indicator); the attribute value is decoded again when filtering.
		const esc = dartwing.jobs.esc;
		return [
			esc(__(doc.status)),
			dartwing.jobs.status_color(doc.status),
			esc("status,=," + doc.status),
		];
	},

	formatters: {
		progress(value, df, doc) {
			const percent = Math.max(0, Math.min(100, flt(value)));
			const title = dartwing.jobs.esc(doc.progress_message || percent + "%");
			return `<div class="d-flex align-items-center" title="${title}">
				<div class="progress flex-grow-1" style="height: 6px; min-width: 40px;">
					<div class="progress-bar ${dartwing.jobs.progress_bar_class(doc.status)}"
						role="progressbar" style="width: ${percent}%"></div>
				</div>
				<span class="ml-2 text-muted small">${Math.round(percent)}%</span>
			</div>`;
		},
		// Frappe v15 renders Link columns with the raw value in data-filter="...", so a name
		// with a double quote (allowed in names) could add attributes. Same markup, escaped.
		job_type(value, df, doc) {
			return dartwing.jobs.link_column_html(value, df, doc);
		},
		organization(value, df, doc) {
			return dartwing.jobs.link_column_html(value, df, doc);
		},
	},

	onload(listview) {
		add_created_range_filter(listview);
		if (dartwing.jobs.is_admin()) {
			listview.page.add_inner_button(__("Job Monitor"), () =>
				frappe.set_route("job-monitor")
			);
		}
	},
};

function add_created_range_filter(listview) {
	// A Datetime field with in_standard_filter only filters on one exact value, so add a
	// range control beside the standard filters; the filter area reads every page field.
	const area = listview.filter_area;
	if (!area || !area.standard_filters_wrapper || listview.page.fields_dict.creation) return;
	listview.page.add_field(
		{
			fieldtype: "DateRange",
			fieldname: "creation",
			label: __("Created Between"),
			condition: "Between",
			onchange: () => area.debounced_refresh_list_view(),
		},
		area.standard_filters_wrapper
	);
}
