"""'Send to TOPCAT / Aladin': a VOTable broadcast over SAMP (the VO's desktop messaging protocol).

The table is written to a file in the user cache and its ``file://`` URL is broadcast with
the ``table.load.votable`` mtype (SAMP 1.3 standard mtypes): every SAMP application that
loads tables (TOPCAT, Aladin, DS9 ...) opens it. The hub is found as SAMP says: the
``SAMP_HUB`` environment variable (``std-lockurl:``) or ``~/.samp``. The exchange runs in a
daemon thread and is given up after ``timeout_s``, so a stale or hung hub never holds the
app. The app and the desktop tools must run on the same machine (a file URL, a local hub).
No Streamlit here: :mod:`explorer.widgets.export` shows the outcome.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from pretrain import config

MTYPE = "table.load.votable"
CLIENT_NAME = "Radio galaxy explorer"
NO_HUB = (
    "No SAMP hub is running on this machine. Start TOPCAT or Aladin (each starts a hub), "
    "then send again; or download the VOTable and open it there."
)


@dataclass(frozen=True)
class SampResult:
    sent: bool
    message: str
    recipients: tuple[str, ...] = ()
    path: Path | None = None


def samp_folder() -> Path:
    folder = config.cache_dir() / "samp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_table_file(votable: bytes, name: str, folder: Path | None = None) -> Path:
    """The VOTable as a file a desktop tool can read (a unique name: earlier sends stay valid)."""
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_")[:80] or "table"
    path = (folder or samp_folder()) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6}.vot"
    path.write_bytes(votable)
    return path


def send_votable(
    votable: bytes, name: str, timeout_s: float = config.APP_SAMP_TIMEOUT_S, folder: Path | None = None
) -> SampResult:
    """Broadcast the table to every SAMP client that loads VOTables; never raises, never waits longer
    than ``timeout_s``."""
    path = write_table_file(votable, name, folder)
    outcome: dict[str, object] = {}

    def exchange() -> None:
        try:
            outcome["recipients"] = _broadcast(path.resolve().as_uri(), name)
        except Exception as exc:  # reported to the user below, whatever it is
            outcome["error"] = exc

    worker = threading.Thread(target=exchange, name="samp-send", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return SampResult(False, f"The SAMP hub did not answer within {timeout_s:g} s; nothing was sent.", path=path)
    error = outcome.get("error")
    if error is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from astropy.samp import SAMPHubError

        if isinstance(error, (SAMPHubError, ConnectionError, OSError)):
            return SampResult(False, NO_HUB, path=path)
        return SampResult(False, f"Sending over SAMP failed: {error}", path=path)
    recipients = tuple(str(r) for r in outcome.get("recipients", ()))  # type: ignore[attr-defined]
    if not recipients:
        return SampResult(
            False, "A SAMP hub is running, but no application on it loads tables (start TOPCAT or Aladin).", path=path
        )
    return SampResult(True, f"Sent to {', '.join(recipients)}.", recipients, path)


def _broadcast(url: str, name: str) -> list[str]:
    """Connect, notify every subscriber of ``table.load.votable``, disconnect; their names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy 8 deprecates astropy.samp in favour of pyvo.samp
        from astropy.samp import SAMPIntegratedClient

    client = SAMPIntegratedClient(name=CLIENT_NAME, callable=False)  # sends only: no callback server
    client.connect()
    try:
        subscribers = list(client.get_subscribed_clients(MTYPE))
        names = []
        for client_id in subscribers:
            metadata = client.get_metadata(client_id) or {}
            names.append(str(metadata.get("samp.name", client_id)))
        if subscribers:
            client.notify_all({"samp.mtype": MTYPE, "samp.params": {"url": url, "table-id": name, "name": name}})
        return names
    finally:
        client.disconnect()
