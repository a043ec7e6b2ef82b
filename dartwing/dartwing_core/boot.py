"""What the desk needs from the engine at boot (hooks.py `boot_session`)."""

from dartwing.dartwing_core.background_jobs import states


def boot_session(bootinfo) -> None:
	"""The engine's state rules for public/js/dartwing_jobs.js, so the desk keeps no copy of them
	(a copy had drifted: the form offered no Cancel for Failed or Timed Out jobs)."""
	bootinfo.dartwing_jobs = {
		"statuses": list(states.STATUSES),
		"unfinished": list(states.UNFINISHED),
		"admin_retryable": list(states.ADMIN_RETRYABLE),
		"pausable": [*states.PAUSABLE_AT_ONCE, states.RUNNING],
		"priorities": list(states.PRIORITIES),
	}
