"""moto_server handling one request at a time, as the DynamoDB store's concurrency tests need.

DynamoDB applies each request atomically. moto does not under its threaded server: its TransactWriteItems
checks and applies item by item without a lock, and a cancelled transaction rolls back by restoring copies of
whole tables taken when it began, which erases what concurrent requests wrote meanwhile (and can bring back
what other rolled-back transactions had written). Concurrent reservations then lose or resurrect runners, so
a test of atomic admission would fail, or pass, for moto's reasons. Serialising the requests restores
per-request atomicity while the store's own reads and writes still interleave freely between requests.

Usage: python moto_serial.py -p <port>   (the arguments of moto_server)
"""

import sys
import threading

import moto.server as server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_lock = threading.Lock()
_original_call = DomainDispatcherApplication.__call__


def _serial_call(self, environ, start_response):
    with _lock:
        # The whole response is built inside the lock (moto answers with complete bodies anyway).
        return list(_original_call(self, environ, start_response))


DomainDispatcherApplication.__call__ = _serial_call

if __name__ == "__main__":
    server.main(sys.argv[1:])
