"""Tables for the standalone store, built from the app's doctype JSON (`tab<DocType>`, Frappe's
column names, standard columns and indexes), so this store and a Frappe site hold the same rows."""

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from .. import schema

_LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
COLUMN_TYPES = {
	"Data": sa.String(140),
	"Link": sa.String(140),
	"Select": sa.String(140),
	"Int": sa.Integer(),
	"Check": sa.SmallInteger(),
	"Float": sa.Float(),
	"Percent": sa.Float(),
	"Datetime": _DATETIME,
	"Small Text": sa.Text(),
	"Text": sa.Text(),
	"Long Text": _LONG_TEXT,
	"Code": _LONG_TEXT,
	"JSON": _LONG_TEXT,
}


def build_metadata() -> tuple[sa.MetaData, dict[str, sa.Table]]:
	metadata = sa.MetaData()
	tables = {}
	for doctype in schema.DOCTYPES:
		columns = [
			sa.Column("name", sa.String(140), primary_key=True),
			sa.Column("creation", _DATETIME),
			sa.Column("modified", _DATETIME),
			sa.Column("modified_by", sa.String(140)),
			sa.Column("owner", sa.String(140)),
			sa.Column("docstatus", sa.SmallInteger(), nullable=False, server_default="0"),
			sa.Column("idx", sa.Integer(), nullable=False, server_default="0"),
		]
		if schema.is_child_table(doctype):
			columns += [
				sa.Column(name, sa.String(140), index=name == "parent") for name in schema.CHILD_COLUMNS
			]
		for field in schema.data_fields(doctype):
			columns.append(
				sa.Column(
					field["fieldname"],
					COLUMN_TYPES[field["fieldtype"]],
					unique=bool(field.get("unique")) or None,
					index=bool(field.get("search_index")) or None,
				)
			)
		table = sa.Table(
			schema.table_name(doctype), metadata, *columns, mysql_charset="utf8mb4", mysql_engine="InnoDB"
		)
		for fields in schema.composite_indexes(doctype):
			sa.Index(schema.index_name("", fields, "index"), *(table.c[f] for f in fields), _table=table)
		for fields in schema.unique_indexes(doctype):
			name = schema.index_name("", fields, "unique")
			sa.Index(name, *(table.c[f] for f in fields), unique=True, _table=table)
		tables[doctype] = table
	return metadata, tables
