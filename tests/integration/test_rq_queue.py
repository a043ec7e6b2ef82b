"""The RQ queue answers "is this message still waiting?" for a whole batch in a few round trips,
with the same answer as asking about each message alone."""

import pytest
from rq.job import Job

from dartwing.dartwing_core.background_jobs.backends import rq_queue


# A queue's list is read whole when short, searched id by id (LPOS) when long: both must agree.
@pytest.mark.parametrize("read_whole_per_id", [20, 0], ids=["list read whole", "list searched"])
def test_waiting_tells_held_messages_from_lost_ones_in_one_call(engine, monkeypatch, read_whole_per_id):
	monkeypatch.setattr(rq_queue, "READ_WHOLE_PER_ID", read_whole_per_id)
	# Given messages in each state RQ can leave them in
	names = ["kept", "unlisted", "gone", "running"]
	jobs = {n: engine.get_job(engine.submit("t_echo", "Acme", {"value": n})["job_id"]) for n in names}
	ids = {n: job["queue_job_id"] for n, job in jobs.items()}
	redis, normal = engine.queue.redis, engine.queue.queues["Normal"]
	redis.lrem(normal.key, 0, ids["unlisted"])  # its record says queued; no worker will find it
	Job.fetch(ids["gone"], connection=redis).delete()
	redis.lrem(normal.key, 0, ids["running"])
	redis.hset(Job.key_for(ids["running"]), "status", "started")  # a worker has it

	# When the queue is asked about all of them at once, and one never sent
	asked = [*ids.values(), "never-sent-1"]
	waiting = engine.queue.waiting(asked)

	# Then only the held ones are waiting, as asking one by one says
	assert waiting == {ids["kept"], ids["running"]}
	assert {i for i in asked if engine.queue.is_waiting(i)} == waiting
	assert engine.queue.waiting([]) == set()
