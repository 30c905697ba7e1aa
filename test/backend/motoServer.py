"""moto's S3 server for ckpt's tests, with its writes made atomic as S3's are.

moto checks a conditional write (If-Match, If-None-Match) and then stores the object as two steps
in a threaded server, so two PUTs racing with the same If-Match can both pass the check and both
land: a lost update that real S3 never allows (of conditional writes to one key, the first to
finish wins and the others get 412). Writes here go one at a time (reads still run side by side),
which makes each check-and-store one step, as on S3.

    python3 motoServer.py -H 127.0.0.1 -p PORT
"""
import argparse
import os
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


class SerialWrites:
    """WSGI middleware: PUT, POST and DELETE requests run one at a time, body read and answer made."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") not in ("PUT", "POST", "DELETE"):
            return self.app(environ, start_response)
        with self.lock:
            # the whole answer is made under the lock: moto's work happens as the body is produced
            return list(self.app(environ, start_response))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, SerialWrites(app), threaded=True)


if __name__ == "__main__":
    main()
