"""Who may reach the app and what it sends anywhere: the loopback rule, the login, Gradio's uploads and analytics.

Off this machine (any ``--host`` but a loopback address) the app needs ``--auth USER`` (Gradio's login; the
password from ``$MAGICNAMING_APP_PASSWORD`` or ``--password_file``, never from the command line, where ``ps`` and
shell histories show it) or ``--open_without_auth true``, which prints a warning. Gradio's analytics and version
check are always off; uploads go to a private temporary folder, cleaned while the app runs and removed when it stops.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

PASSWORD_VARIABLE = "MAGICNAMING_APP_PASSWORD"
# every CLEAN_EVERY seconds Gradio deletes the uploads and cached outputs older than CLEAN_AGE seconds
CLEAN_EVERY, CLEAN_AGE = 600, 3600
OPEN_WARNING = """
*** WARNING: magicnaming app is serving on {host} WITHOUT A LOGIN (--open_without_auth true). ***
*** Anyone who can reach this address can download every identity and image, make identities and   ***
*** draw with them. Use --auth USER (password from ${variable} or --password_file) to require one. ***
"""


def is_loopback(host: str) -> bool:
    """Whether ``host`` serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name or an interface's name: reachable from elsewhere
        return False


def check_access(
    host: str, auth: str | None, password_file: Path | None, open_without_auth: bool
) -> tuple[str, str] | None:
    """Gradio's ``auth`` for ``launch`` (None: no login); raises one ValueError naming the arguments when an address
    off this machine has neither a login nor the explicit opt-out, or the password is missing."""
    if password_file is not None and auth is None:
        raise ValueError("--password_file: the password of a login; give the user name with --auth USER too")
    if auth is not None and open_without_auth:
        raise ValueError("--open_without_auth true: contradicts --auth; drop one of them")
    if auth is None:
        if not (is_loopback(host) or open_without_auth):
            raise ValueError(
                f"--host {host}: serves the app off this machine, where anyone who reaches it could download every "
                f"identity and image and make identities; require a login with --auth USER (the password "
                f"from ${PASSWORD_VARIABLE} or --password_file), or pass --open_without_auth true to accept that"
            )
        return None
    if not auth.strip() or auth != auth.strip():
        raise ValueError(f"--auth: expected a user name without surrounding spaces, got {auth!r}")
    return auth, _password(auth, password_file)


def _password(auth: str, password_file: Path | None) -> str:
    """The login's password: the first line of ``password_file``, else ``$MAGICNAMING_APP_PASSWORD``."""
    if password_file is None:
        password = os.environ.get(PASSWORD_VARIABLE, "")
        if not password:
            raise ValueError(
                f"--auth {auth}: expected the password in ${PASSWORD_VARIABLE} (or the first line of --password_file), "
                f"found {'an empty one' if PASSWORD_VARIABLE in os.environ else 'none'}"
            )
        return password
    try:
        lines = Path(password_file).read_text().splitlines()
    except OSError as error:
        raise ValueError(f"--password_file: cannot read {str(password_file)!r} ({error.strerror})") from error
    if not lines or not lines[0]:
        raise ValueError(f"--password_file: expected the password on the first line of {str(password_file)!r}, "
                         "found an empty line")  # fmt: skip
    return lines[0]


def warn_if_open(host: str, auth: tuple[str, str] | None) -> None:
    """Prints the warning of an app served off this machine without a login (to stderr, before it starts)."""
    if auth is None and not is_loopback(host):
        print(OPEN_WARNING.format(host=host, variable=PASSWORD_VARIABLE), file=sys.stderr, flush=True)


def private_gradio_setup() -> Path:
    """Turns Gradio's analytics and version check off and gives it a private upload folder (mode 0700, inside
    ``$GRADIO_TEMP_DIR`` when set), removed when the process exits (SIGTERM stops it as Ctrl-C does, so that runs).
    Call before Gradio is imported: it reads ``GRADIO_TEMP_DIR`` at import."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    parent = os.environ.get("GRADIO_TEMP_DIR")
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="magicnaming-app-", dir=parent))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # KeyboardInterrupt: Gradio closes its server
    return folder
