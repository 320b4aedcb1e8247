"""A static file server on 127.0.0.1, standing in for the web when the embedded sample is downloaded."""

from __future__ import annotations

import contextlib
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serve_folder(folder: str | Path, port: int = 0):
    """Serves ``folder`` at ``http://127.0.0.1:PORT/`` (a free port when 0) while the block runs; yields the URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as error:
        raise OSError(f"cannot serve the sample on 127.0.0.1:{port} ({error}); is another build running?") from error
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
