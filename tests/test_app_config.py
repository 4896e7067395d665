"""The app's Streamlit settings: what a user gets from `python -m streamlit run app.py`."""

from __future__ import annotations

import tomllib

from pretrain import config


def test_the_app_listens_on_this_machine_only_by_default():
    settings = tomllib.loads((config.REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["address"] == "127.0.0.1"  # no log-in: never all interfaces by default
    assert settings["server"]["headless"] is True and settings["browser"]["gatherUsageStats"] is False
