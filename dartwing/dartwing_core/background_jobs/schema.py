"""The doctype JSON files are the one definition of the schema; this module reads them for the
standalone store. Composite indexes live under the JSON key `dartwing_indexes`, which the Frappe
side applies in `on_doctype_update`."""

import json
from functools import cache
from pathlib import Path

DOCTYPE_DIR = Path(__file__).resolve().parent.parent / "doctype"
DOCTYPES = ("Organization", "Job Type", "Background Job", "Job Execution Log")
LAYOUT_TYPES = {"Section Break", "Column Break", "Tab Break", "HTML", "Button", "Heading"}


def table_name(doctype: str) -> str:
	return f"tab{doctype}"


@cache
def load(doctype: str) -> dict:
	folder = doctype.lower().replace(" ", "_")
	return json.loads((DOCTYPE_DIR / folder / f"{folder}.json").read_text())


@cache
def data_fields(doctype: str) -> tuple[dict, ...]:
	return tuple(f for f in load(doctype)["fields"] if f["fieldtype"] not in LAYOUT_TYPES)


def composite_indexes(doctype: str) -> list[list[str]]:
	return load(doctype).get("dartwing_indexes", [])


@cache
def defaults(doctype: str) -> dict:
	"""Field defaults typed as the column holds them (JSON stores every default as a string)."""
	out = {}
	for f in data_fields(doctype):
		if "default" not in f:
			continue
		value = f["default"]
		if f["fieldtype"] in ("Int", "Check"):
			value = int(value)
		elif f["fieldtype"] in ("Float", "Percent", "Currency"):
			value = float(value)
		out[f["fieldname"]] = value
	return out
