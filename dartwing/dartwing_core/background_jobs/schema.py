"""The doctype JSON files are the one definition of the schema; this module reads them for the
standalone store (tables) and for both stores (defaults of inserted rows). Composite indexes live under the JSON keys `dartwing_indexes` and
`dartwing_unique_indexes`, which the Frappe side applies in `on_doctype_update`; indexes an
index replaced are listed under `dartwing_dropped_indexes`, and both stores drop them."""

import hashlib
import json
from functools import cache
from pathlib import Path

from .errors import ValidationError

DOCTYPE_DIR = Path(__file__).resolve().parent.parent / "doctype"
DOCTYPES = (
	"Organization",
	"Job Type",
	"Background Job",
	"Job Execution Log",
	"Job Schedule",
	"Background Job Step",
	"Background Job Item",
)
# Fields without a column of their own: layout, and Table (its rows live in the child doctype's
# table, pointing at their parent).
LAYOUT_TYPES = {"Section Break", "Column Break", "Tab Break", "HTML", "Button", "Heading", "Table"}
# The columns Frappe gives a child table's rows (istable doctypes): which document, and which of
# its Table fields, a row belongs to.
CHILD_COLUMNS = ("parent", "parentfield", "parenttype")


def table_name(doctype: str) -> str:
	return f"tab{doctype}"


@cache
def load(doctype: str) -> dict:
	folder = doctype.lower().replace(" ", "_")
	return json.loads((DOCTYPE_DIR / folder / f"{folder}.json").read_text())


@cache
def data_fields(doctype: str) -> tuple[dict, ...]:
	return tuple(f for f in load(doctype)["fields"] if f["fieldtype"] not in LAYOUT_TYPES)


@cache
def numeric_fields(doctype: str) -> frozenset[str]:
	return frozenset(f["fieldname"] for f in data_fields(doctype) if f["fieldtype"] in NUMERIC_TYPES)


NUMERIC_TYPES = ("Int", "Check", "Float", "Percent", "Currency")


def is_child_table(doctype: str) -> bool:
	return bool(load(doctype).get("istable"))


def composite_indexes(doctype: str) -> list[list[str]]:
	return load(doctype).get("dartwing_indexes", [])


def dropped_indexes(doctype: str) -> list[list[str]]:
	"""Indexes an earlier version declared and a wider one replaced: dropped where present."""
	return load(doctype).get("dartwing_dropped_indexes", [])


def index_name(prefix: str, fields: list[str], suffix: str) -> str:
	"""The index's name from its fields; a long one is cut, with a hash of the whole, to the
	63 characters PostgreSQL allows (MariaDB: 64)."""
	name = "_".join([*filter(None, [prefix]), *fields, *filter(None, [suffix])])
	if len(name) <= 63:
		return name
	return f"{name[:54]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def unique_indexes(doctype: str) -> list[list[str]]:
	"""Composite unique indexes (JSON key `dartwing_unique_indexes`): a job's item keys."""
	return load(doctype).get("dartwing_unique_indexes", [])


def complete_row(doctype: str, row: dict, now, columns) -> dict:
	"""A row as a store inserts it: field defaults, Frappe's standard columns, then `row`; a field
	the table lacks is refused by name."""
	values = {**defaults(doctype), "creation": now, "modified": now, **row}
	values.setdefault("owner", "Administrator")
	values.setdefault("modified_by", values["owner"])
	unknown = set(values) - set(columns)
	if unknown:
		raise ValidationError(doctype, f"unknown fields {sorted(unknown)}")
	return values


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
