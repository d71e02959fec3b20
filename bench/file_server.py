"""The loopback origin for the URL benchmarks: Python's ThreadingHTTPServer, answering file bodies with
sendfile(2).

In production the input URL is served by another machine (a CDN, a bucket); here the origin shares the
benchmark's cores, so its CPU counts against retouch. `python -m http.server` copies each body through
Python in 64 KB chunks (~1.5 ms of CPU per 3 MB file); sendfile hands the copy to the kernel. Usage:

    python bench/file_server.py DIRECTORY PORT

A path under /slow/<ms>/ is answered after <ms> milliseconds: the slow-origin mode of bench_sync.py.
"""

from __future__ import annotations

import functools
import shutil
import sys
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO


class SendfileHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real origin

    def send_head(self) -> Any:
        # /slow/<ms>/<file>: an origin that takes <ms> to answer (a CDN in another region, a busy bucket).
        # It sleeps, so the wait costs no CPU on the cores the benchmark measures.
        if self.path.startswith("/slow/"):
            _, _, ms, rest = self.path.split("/", 3)
            time.sleep(int(ms) / 1000)
            self.path = "/" + rest
        return super().send_head()

    def copyfile(self, source: BinaryIO, outputfile: Any) -> None:
        self.wfile.flush()  # the headers go first
        try:
            self.connection.sendfile(source)
        except (AttributeError, OSError):  # not a real file or socket: the portable way
            shutil.copyfileobj(source, outputfile)

    def log_message(self, format: str, *args: Any) -> None:  # one line per request would only cost CPU
        pass


def main() -> None:
    directory, port = sys.argv[1], int(sys.argv[2])
    handler = functools.partial(SendfileHandler, directory=directory)
    ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()


if __name__ == "__main__":
    main()
