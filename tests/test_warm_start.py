"""Before `serve` takes requests it starts what the first burst of acks would otherwise wait for: the work
pool's threads, the timer thread and the ack path's Redis connections (bench/ack.py, issue #22)."""

from __future__ import annotations

import threading

from bot.core.store import Store, fast_client
from bot.core.work import Timers, WorkPool


def test_the_work_pool_starts_every_worker_and_still_counts_only_real_jobs():
    pool = WorkPool(workers=4, queue=2, name="warm-test")
    try:
        pool.start_workers()
        assert len([t for t in threading.enumerate() if t.name.startswith("warm-test")]) == 4
        assert pool.busy == 0 and not pool.full()
        assert pool.submit(lambda: 42).result(5) == 42
        assert pool.busy == 0
    finally:
        pool.shutdown(wait=True)


def test_the_timer_thread_runs_before_the_first_timer():
    timers = Timers()
    try:
        timers.start()
        assert any(t.name == "spaceops-timers" for t in threading.enumerate())
        ran = threading.Event()
        timers.after(0, ran.set)
        assert ran.wait(5)
    finally:
        timers.stop()


def test_the_ack_path_redis_connections_are_open_before_the_first_request(redis_client):
    store = Store(redis_client, fast=fast_client(redis_client))
    assert store.warm(6) == 6
    pool = store.fast.connection_pool
    assert len(pool._available_connections) == 6  # open and idle, none held
    assert store.once("warm-test") is True and store.once("warm-test") is False


def test_without_redis_the_warm_start_gives_up_and_the_bot_still_starts():
    import redis

    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert Store(client, fast=fast_client(client)).warm(3) == 0
