"""VOTable export (UCDs, units, provenance) and 'send to TOPCAT' over SAMP, against astropy's own hub."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from explorer.samp_send import MTYPE, NO_HUB, send_votable
from explorer.votable import votable_bytes
from pretrain.votable import read_votable

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # astropy 8 deprecates astropy.samp (pyvo.samp wraps it)
    from astropy.samp import SAMPHubServer, SAMPIntegratedClient


def _neighbours() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query": ["100_187.706+12.391_0.004_45.6"] * 3,
            "rank": [1, 2, 3],
            "cosine_similarity": [0.98765, 0.9, 0.85],
            "source_id": ["a", "b", "c"],
            "ra": [187.70593, 3.3614, 359.99],
            "dec": [12.39112, -7.25043, -0.5],
            "label": ["FRI", "FRII", ""],
            "confident": [True, None, False],
            "redshift": [0.004, np.nan, 0.2],
        }
    )


def _document() -> bytes:
    return votable_bytes(
        _neighbours(),
        "neighbours of a",
        "The 3 nearest neighbours",
        infos={"backbone_sha256": "ab" * 32, "space": "MiraBest (default)"},
        params={"n_neighbours": 3, "sky_radius_arcsec": 30.0, "embedding_symmetry": "d4"},
    )


def test_votable_positions_scores_labels_and_provenance():
    from astropy.io.votable import parse

    votable = parse(__import__("io").BytesIO(_document()))
    table = votable.get_first_table()
    fields = {f.name: f for f in table.fields}
    assert (fields["ra"].ucd, str(fields["ra"].unit)) == ("pos.eq.ra;meta.main", "deg")
    assert (fields["dec"].ucd, str(fields["dec"].unit)) == ("pos.eq.dec;meta.main", "deg")
    assert fields["source_id"].ucd == "meta.id;meta.main"
    rows, infos, params = read_votable(_document())
    assert rows["source_id"].tolist() == ["a", "b", "c"]
    assert rows["dec"].tolist() == [12.39112, -7.25043, -0.5]  # full precision, signs kept
    assert rows["cosine_similarity"].iloc[0] == 0.98765 and rows["label"].tolist()[:2] == ["FRI", "FRII"]
    assert infos["backbone_sha256"] == "ab" * 32 and infos["space"] == "MiraBest (default)"
    assert params == {"n_neighbours": 3, "sky_radius_arcsec": 30.0, "embedding_symmetry": "d4"}


@pytest.fixture
def samp_hub(tmp_path, monkeypatch):
    """A private SAMP hub on 127.0.0.1 (no web profile), found through SAMP_HUB."""
    lockfile = tmp_path / "samp-lock"
    hub = SAMPHubServer(addr="127.0.0.1", lockfile=str(lockfile), web_profile=False)
    hub.start()
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{lockfile}")
    try:
        yield hub
    finally:
        hub.stop()


def test_send_to_a_samp_client_delivers_the_table(samp_hub, tmp_path):
    received: list[dict] = []
    got = threading.Event()

    def on_table(private_key, sender_id, mtype, params, extra):
        received.append(params)
        got.set()

    receiver = SAMPIntegratedClient(name="test-topcat", addr="127.0.0.1")
    receiver.connect()
    try:
        receiver.bind_receive_notification(MTYPE, on_table)
        result = send_votable(_document(), "neighbours of a", timeout_s=10, folder=tmp_path)
        assert result.sent, result.message
        assert result.recipients == ("test-topcat",) and "test-topcat" in result.message
        assert got.wait(10), "the table never arrived"
    finally:
        receiver.disconnect()
    params = received[0]
    assert params["url"].startswith("file://") and params["name"] == "neighbours of a"
    from urllib.parse import unquote, urlparse

    rows, infos, _ = read_votable(unquote(urlparse(params["url"]).path))
    assert rows["source_id"].tolist() == ["a", "b", "c"] and infos["backbone_sha256"] == "ab" * 32


def test_no_hub_gives_a_clear_message_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{tmp_path / 'no-such-lockfile'}")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.samp-1 of a real desktop either
    start = time.monotonic()
    result = send_votable(_document(), "x", timeout_s=5, folder=tmp_path)
    assert not result.sent and result.message == NO_HUB
    assert time.monotonic() - start < 5
    assert result.path is not None and result.path.is_file()  # the file is there to open by hand


def test_a_hung_hub_is_given_up_after_the_timeout(tmp_path, monkeypatch):
    import explorer.samp_send as samp_send

    monkeypatch.setattr(samp_send, "_broadcast", lambda url, name: time.sleep(30))
    start = time.monotonic()
    result = send_votable(_document(), "x", timeout_s=0.5, folder=tmp_path)
    assert not result.sent and "did not answer within 0.5 s" in result.message
    assert time.monotonic() - start < 3
