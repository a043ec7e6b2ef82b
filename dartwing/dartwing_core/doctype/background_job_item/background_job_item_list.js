// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// The list shows item keys, the handler's text: escaped (see public/js/dartwing_jobs.js).
frappe.listview_settings["Background Job Item"] = {
	onload() {
		dartwing.jobs.escape_data_fields("Background Job Item");
	},
	formatters: {
		item_key: (value) => dartwing.jobs.esc(value),
		error_type: (value) => dartwing.jobs.esc(value),
	},
};
