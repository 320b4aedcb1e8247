"""``magicnaming app`` as served: an address off this machine needs a login; with ``--auth`` nothing (files, uploads)
is served before it; uploads are limited in size and kept in a private folder removed when the app stops; the app
contacts no host (every proxy variable points at a local recorder that must see nothing)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio")

from namespace.inference.app.commands import app

from .conftest import free_port, wait_until_serving

pytestmark = pytest.mark.slow  # each test serves the app (about 15 s to start on 2 cores)

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"


def test_an_address_off_this_machine_needs_a_login(tmp_path):
    """192.0.2.1 (TEST-NET-1) is no address of this machine: refused before any model loads or any socket opens."""
    with pytest.raises(ValueError) as refused:
        app(pipeline="tiny", host="192.0.2.1", port=free_port(), library=tmp_path, outputs=tmp_path)
    assert str(refused.value).startswith("--host 192.0.2.1: serves the app off this machine")
    assert "--auth USER (the password from $MAGICNAMING_APP_PASSWORD or --password_file)" in str(refused.value)
    assert "--open_without_auth true" in str(refused.value)


def test_the_login_password_comes_from_the_environment_or_a_file(tmp_path, monkeypatch):
    from namespace.inference.app.serving import check_access

    monkeypatch.delenv("MAGICNAMING_APP_PASSWORD", raising=False)
    assert check_access("127.0.0.1", None, None, False) is None
    assert check_access("0.0.0.0", None, None, True) is None  # the explicit opt-out
    with pytest.raises(ValueError, match=r"^--auth ann: expected the password in \$MAGICNAMING_APP_PASSWORD .*none"):
        check_access("0.0.0.0", "ann", None, False)
    monkeypatch.setenv("MAGICNAMING_APP_PASSWORD", "s3cret")
    assert check_access("0.0.0.0", "ann", None, False) == ("ann", "s3cret")
    secret = tmp_path / "password"
    secret.write_text("from-file\nignored\n")
    assert check_access("::", "ann", secret, False) == ("ann", "from-file")  # the file wins over the environment
    secret.write_text("\n")
    with pytest.raises(ValueError, match=r"^--password_file: expected the password on the first line of .*empty"):
        check_access("0.0.0.0", "ann", secret, False)
    with pytest.raises(ValueError, match=r"^--password_file: cannot read .*missing"):
        check_access("0.0.0.0", "ann", tmp_path / "missing", False)
    with pytest.raises(ValueError, match=r"^--password_file: the password of a login; give the user name with --auth"):
        check_access("127.0.0.1", None, secret, False)
    with pytest.raises(ValueError, match=r"^--open_without_auth true: contradicts --auth"):
        check_access("0.0.0.0", "ann", None, True)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False),
     ("192.168.1.2", False), ("myhost.lan", False)],
)  # fmt: skip
def test_only_loopback_addresses_serve_without_a_login_or_a_warning(host, loopback, capsys):
    from namespace.inference.app.serving import is_loopback, warn_if_open

    assert is_loopback(host) is loopback
    warn_if_open(host, None)
    assert ("WARNING: magicnaming app is serving on" in capsys.readouterr().err) is not loopback
    warn_if_open(host, ("ann", "s3cret"))
    assert capsys.readouterr().err == ""


class Recorder:
    """A "proxy" on 127.0.0.1 that answers nothing and records the first line of every connection made to it."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.lines: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    self.lines.append(connection.recv(4096).split(b"\r\n")[0].decode(errors="replace"))
                except OSError:
                    self.lines.append("(a connection)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on 127.0.0.1 with --auth tester, --max_upload_mb 1 and every proxy variable at a Recorder."""
    folder = tmp_path_factory.mktemp("served")
    (folder / "library").mkdir()
    (folder / "library/alice.safetensors").write_bytes(b"an identity file, as far as the file route cares")
    recorder, port = Recorder(), free_port()
    command = [sys.executable, "-m", "namespace.cli", "app", "--pipeline", "tiny", "--port", str(port)]
    command += ["--library", str(folder / "library"), "--outputs", str(folder / "outputs")]
    command += ["--auth", "tester", "--max_upload_mb", "1"]
    proxies = {name: recorder.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    proxies |= {name.lower(): value for name, value in proxies.items()}
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRADIO_")}  # the app's own settings
    env |= proxies | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    env |= {"MAGICNAMING_APP_PASSWORD": PASSWORD, "GRADIO_TEMP_DIR": str(folder / "gradio")}
    log = (folder / "app.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, f"{url}/", folder / "app.log")
        yield server, url, folder, recorder
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
        log.close()


def _opener() -> urllib.request.OpenerDirector:
    """urllib with no proxy: the test's own requests go straight to 127.0.0.1."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _status(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes, list[str]]:
    """(HTTP status, body, Set-Cookie headers) of a GET, or a POST of ``data``."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with _opener().open(request, timeout=30) as answer:
            return answer.status, answer.read(), answer.headers.get_all("set-cookie") or []
    except urllib.error.HTTPError as error:
        return error.code, error.read(), []


def _login(url: str, password: str) -> tuple[int, dict]:
    """Logs in as tester: (status, the headers that carry the session). The login's cookie names hold a "=", which
    http.cookiejar refuses, so the cookie travels by hand."""
    form = urllib.parse.urlencode({"username": "tester", "password": password}).encode()
    code, _, cookies = _status(f"{url}/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
    return code, {"Cookie": "; ".join(cookie.split(";")[0] for cookie in cookies if "-unsecure-" in cookie)}


def _upload(url: str, size: int, headers: dict | None = None) -> tuple[int, bytes]:
    boundary = "magicnaming-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="photo.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\0" * size
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = (headers or {}) | {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return _status(f"{url}/gradio_api/upload", body, headers)[:2]


def test_with_auth_nothing_is_served_before_the_login(served):
    _, url, folder, _ = served
    identity_file = f"{url}/gradio_api/file={folder / 'library/alice.safetensors'}"
    assert _status(identity_file)[0] == 401
    assert _upload(url, 10)[0] == 401
    assert _login(url, "wrong")[0] == 400
    code, session = _login(url, PASSWORD)
    assert code == 200
    assert _status(identity_file, headers=session)[:2] == (200, (folder / "library/alice.safetensors").read_bytes())


def test_uploads_are_limited_and_private(served):
    _, url, folder, _ = served
    _, session = _login(url, PASSWORD)
    code, answer = _upload(url, 2 * 2**20, session)
    assert code == 413, answer
    code, answer = _upload(url, 1000, session)
    assert code == 200, answer
    (path,) = json.loads(answer)
    private = Path(path).relative_to(folder / "gradio").parts[0]
    assert private.startswith("magicnaming-app-") and (folder / "gradio" / private).stat().st_mode & 0o077 == 0


def test_the_app_contacts_no_other_host(served):
    _, url, _, recorder = served
    _, session = _login(url, PASSWORD)
    assert _status(f"{url}/", headers=session)[0] == 200
    time.sleep(3)  # Gradio's version check and analytics run in threads, started with the app
    assert recorder.lines == []


def test_stopping_the_app_removes_its_uploads(served):
    server, _, folder, _ = served
    assert len(list((folder / "gradio").glob("magicnaming-app-*"))) == 1
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    assert list((folder / "gradio").glob("magicnaming-app-*")) == []
