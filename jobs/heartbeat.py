"""A worker's heartbeat, sent from a thread of its own rather than from the event loop.

procrastinate beats every 10 s from a task on the worker's event loop, and other workers retry the ``doing``
jobs of a worker whose beat is older than ``SLUICE_STALLED_JOB_SECONDS``. So a worker whose loop is blocked for
that long (a long stretch of pure nodes, a hostile document parsed in process) or that is draining long jobs at
shutdown (procrastinate cancels the heartbeat task first, then waits for the jobs) looked dead while it was
still running its jobs: they were retried elsewhere and ran twice at once, doubling node events. Beating from a
thread, from registration until every job of the worker has ended, keeps "alive but busy" apart from "dead": a
killed process stops beating at once, a busy one never does.
"""

from __future__ import annotations

import threading

import psycopg
import structlog

log = structlog.get_logger()


class HeartbeatThread(threading.Thread):
    """Updates ``procrastinate_workers.last_heartbeat`` for one worker every ``interval`` seconds until
    :meth:`stop`. A failed beat (the database is away) is logged and tried again at the next one."""

    def __init__(self, conninfo: str, worker_id: int, interval: float) -> None:
        super().__init__(name=f"heartbeat-{worker_id}", daemon=True)
        self.conninfo, self.worker_id, self.interval = conninfo, worker_id, interval
        self._stopping = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            while not self._stopping.wait(self.interval):
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(
                            self.conninfo,
                            autocommit=True,
                            connect_timeout=5,
                            options="-c statement_timeout=5000",
                        )
                    conn.execute("SELECT procrastinate_update_heartbeat_v1(%s)", (self.worker_id,))
                except psycopg.Error as exc:
                    log.warning(
                        "heartbeat_failed", worker_id=self.worker_id, error=f"{type(exc).__name__}: {exc}"
                    )
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)
