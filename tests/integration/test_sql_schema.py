"""The standalone store's tables come from the doctype JSON: an index the JSON gains later reaches
a database whose tables already exist."""

import sqlalchemy as sa

from dartwing.dartwing_core.background_jobs import schema
from dartwing.dartwing_core.background_jobs.transitions import JOB


def index_names(store) -> set[str]:
	return {index["name"] for index in sa.inspect(store.engine).get_indexes(schema.table_name(JOB))}


def test_create_schema_adds_indexes_missing_from_an_existing_table(any_engine):
	# Given a Background Job table from before the list-page index was declared
	store = any_engine.store
	index = next(i for i in store.tables[JOB].indexes if i.name == "organization_status_creation_index")
	with store.engine.begin() as conn:
		index.drop(conn)
	assert "organization_status_creation_index" not in index_names(store)

	store.create_schema()

	assert {"organization_status_creation_index", "status_name_index"} <= index_names(store)


def test_create_schema_drops_an_index_a_wider_one_replaced(any_engine):
	# Given a table from before the metrics index gained the items counts: its narrower index
	store = any_engine.store
	old = ["status", "completed_at", "job_type", "started_at"]
	assert old in schema.dropped_indexes(JOB)
	old_name = schema.index_name("", old, "index")
	table = sa.Table(schema.table_name(JOB), sa.MetaData(), autoload_with=store.engine)
	with store.engine.begin() as conn:
		sa.Index(old_name, *(table.c[f] for f in old)).create(conn)
	assert old_name in index_names(store)

	store.create_schema()

	# Then it is gone, and the wider one, its name cut to PostgreSQL's 63 characters, is there
	wider = schema.index_name("", [*old, "items_done", "items_failed", "items_skipped"], "index")
	assert len(wider) == 63
	assert old_name not in index_names(store)
	assert wider in index_names(store)
