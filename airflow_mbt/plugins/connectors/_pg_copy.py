"""Fast ``COPY ... TO STDOUT`` reader for ``postgres.py``: libpq's blocking ``PQgetCopyData`` in a
background thread, handing row-aligned segments to the caller through a bounded queue.

PostgreSQL sends one message per row; psycopg's high-level ``Copy`` object spends several
microseconds of Python per message, which made it the bottleneck of large reads. Here the
per-row loop is a single C call, and parsing of one segment overlaps the reading of the next.
Memory in flight is bounded by ``(queue size + 2) * segment_bytes``.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

_DONE = object()


class CopyFailed(Exception):
    """The COPY ended with an error result (``cause`` is the psycopg error, when known)."""

    def __init__(self, message: str, cause: Exception | None = None):
        super().__init__(message)
        self.cause = cause


def _row_boundary(buf: bytearray) -> int:
    """Index just after the last newline outside double quotes (0 if none).

    In CSV with doubled-quote escaping, a position is outside quotes iff an even number of quote
    characters precede it.
    """
    total = buf.count(b'"')
    end = len(buf)
    while True:
        pos = buf.rfind(b"\n", 0, end)
        if pos < 0:
            return 0
        if (total - buf.count(b'"', pos)) % 2 == 0:
            return pos + 1
        end = pos


def copy_out_segments(conn, query: bytes, segment_bytes: int, max_queued: int = 2) -> Iterator[bytes]:
    """Yield CSV bytes of ``query`` (a ``COPY ... TO STDOUT (FORMAT csv)``) cut at row boundaries.

    ``conn`` is an idle autocommit psycopg connection; it is held (``conn.lock``) until the COPY
    is fully consumed. Closing the generator early cancels the query on the server.
    """
    from psycopg import pq
    from psycopg.errors import error_from_result

    q: queue.Queue = queue.Queue(maxsize=max_queued)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def reader() -> None:
        try:
            with conn.lock:
                pg = conn.pgconn
                pg.send_query(query)
                res = pg.get_result()
                if res is None or res.status != pq.ExecStatus.COPY_OUT:
                    while pg.get_result() is not None:
                        pass
                    raise CopyFailed("COPY did not start", error_from_result(res) if res is not None else None)
                buf = bytearray()
                get = pg.get_copy_data
                while True:
                    nbytes, data = get(0)
                    if nbytes <= 0:
                        break
                    buf += data
                    if len(buf) >= segment_bytes:
                        cut = _row_boundary(buf)
                        if cut:
                            if not stop.is_set():
                                put(bytes(buf[:cut]))
                            del buf[:cut]
                failure = None
                while (res := pg.get_result()) is not None:
                    if res.status != pq.ExecStatus.COMMAND_OK and failure is None:
                        failure = error_from_result(res)
                if nbytes == -2 or failure is not None:
                    raise CopyFailed("COPY failed", failure)
                if buf:
                    put(bytes(buf))
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)

    thread = threading.Thread(target=reader, name="mbt-pg-copy", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            item = q.get()
            if item is _DONE:
                finished = True
                return
            if isinstance(item, BaseException):
                finished = True
                raise item
            yield item
    finally:
        if not finished:
            stop.set()
            try:
                conn.cancel()
            except Exception:  # noqa: BLE001 - best effort; the reader drains either way
                pass
        thread.join()
