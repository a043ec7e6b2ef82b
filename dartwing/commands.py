"""Bench commands of the app. Bench imports this module in every `bench ...` process, the parent of
`bench worker` included, before that worker forks a work-horse per job: there it preloads what a
dartwing job's horse would otherwise import each time (backends/frappe_preload.py).
DARTWING_PRELOAD=0 turns that off."""

import os
import sys

WORKER_COMMANDS = {"worker", "worker-pool"}

if os.environ.get("DARTWING_PRELOAD", "1") != "0" and WORKER_COMMANDS & set(sys.argv[1:]):
	from dartwing.dartwing_core.background_jobs.backends.frappe_preload import preload

	preload(os.getcwd())

commands = []
