"""moto's server with one request at a time.

Stock `moto_server` serves requests on several threads with no lock around its backends: an UpdateItem on a
missing item is visible half-made (an item with no attributes) to a concurrent request, and a cancelled
TransactWriteItems restores a copy of every table it touched, undoing writes other requests made meanwhile.
Real DynamoDB makes each request atomic; so does this wrapper, by holding one lock for the whole of each request
(the response is read out inside it). Connections are still accepted on several threads.

Usage: python moto_serial.py HOST PORT
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    run_simple(host, port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
