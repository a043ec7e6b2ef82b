"""Which database and driver a URL means: plain scheme names accepted, the drivers this project
installs chosen."""

import functools

from sqlalchemy.engine import make_url

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@functools.cache
def mysqlclient_loads() -> bool:
	"""Importable, not merely installed: its C module needs MariaDB's client library at run time."""
	try:
		import MySQLdb  # noqa: F401
	except ImportError:
		return False
	return True


def normalize_url(url: str) -> str:
	"""Accept plain scheme names and pick the drivers this project installs: for MariaDB/MySQL
	mysqlclient (C) when it imports, else PyMySQL (pure Python, always installed). A URL that
	names its driver (mysql+pymysql://) keeps it."""
	parsed = make_url(url)
	mysql_driver = "mysql+mysqldb" if mysqlclient_loads() else "mysql+pymysql"
	driver = {"mysql": mysql_driver, "mariadb": mysql_driver, "postgresql": "postgresql+psycopg"}
	if parsed.drivername in driver:
		parsed = parsed.set(drivername=driver[parsed.drivername])
	if parsed.drivername.startswith("mysql") and "charset" not in parsed.query:
		parsed = parsed.update_query_dict({"charset": "utf8mb4"})
	if (
		parsed.drivername == "mysql+pymysql"
		and (parsed.host or "localhost") in _LOOPBACK
		and not any(key.startswith("ssl") for key in parsed.query)
	):
		# PyMySQL tries TLS by default and builds a fresh SSL context (~25 ms) for every
		# connection; a worker's work-horse connects once per job. On loopback TLS protects
		# nothing, so it is off unless the URL asks for it (e.g. ?ssl_ca=...).
		parsed = parsed.update_query_dict({"ssl_disabled": "true"})
	return parsed.render_as_string(hide_password=False)
