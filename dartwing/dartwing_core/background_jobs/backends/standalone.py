"""Wires the standalone backend: SQLAlchemy store, RQ queue and Redis events from two URLs."""

import os
from pathlib import Path

from redis import Redis

from ..engine import Engine
from ..settings import Settings
from .redis_events import RedisEvents
from .rq_queue import RqQueue
from .sql_store import SqlStore

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def default_db_url() -> str:
	data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
	(data_home / "dartwing").mkdir(parents=True, exist_ok=True)
	return f"sqlite:///{data_home / 'dartwing' / 'jobs.db'}"


def build_engine(
	db_url: str | None = None, redis_url: str | None = None, settings: Settings | None = None
) -> Engine:
	settings = settings or Settings.from_env()
	db_url = db_url or os.environ.get("DARTWING_DB_URL") or default_db_url()
	redis_url = redis_url or os.environ.get("DARTWING_REDIS_URL") or DEFAULT_REDIS_URL
	redis = Redis.from_url(redis_url)
	return Engine(
		store=SqlStore(db_url),
		queue=RqQueue(redis, settings.queue_prefix),
		events=RedisEvents(redis, settings.queue_prefix),
		settings=settings,
		lock_client=redis,
	)
