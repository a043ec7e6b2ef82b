app_name = "dartwing"
app_title = "Dartwing"
app_publisher = "Dartwing"
app_description = "Guaranteed background jobs for Frappe: retries, dead letters, live progress, audit."
app_email = "dev@dartwing.example"
app_license = "mit"
required_apps = ["frappe"]

# Controllers start with generated `DF` type annotations.
export_python_type_annotations = True

# The Frappe backend of the engine (its Store, Queue and Events over frappe.db, frappe.enqueue and
# frappe.publish_realtime), with the scheduler_events, fixtures and permission hooks that use it,
# is the next step; the standalone backend runs the same engine today. See docs/architecture.md.
