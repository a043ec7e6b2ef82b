// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// Items are written by the engine, not saved through the desk: their keys and error types are
// the handler's text, shown escaped (public/js/dartwing_jobs.js).
frappe.ui.form.on("Background Job Item", {
	setup() {
		dartwing.jobs.escape_data_fields("Background Job Item");
	},
});
