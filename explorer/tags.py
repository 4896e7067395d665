"""Tags: free-text labels people give sources ("bent", "check in LoTSS", "paper 2"), kept per space.

Storage: one append-only JSON-lines log per space under ``cache_dir()/tags``; each line
adds or removes one tag of one source. Every write appends whole lines under an exclusive
``fcntl.flock`` and every read takes a shared lock, so two browser tabs (threads) or two
app processes tagging at once interleave whole lines and lose nothing; replaying the log
gives the current tags. A line that is not JSON (a write cut short by a crash) is skipped.
The log doubles as a history (who tagged what when is one ``grep`` away).

No Streamlit here: :mod:`explorer.widgets.tags` draws the controls; :func:`tag_colour_columns`
offers "tag: NAME" as colours of the map (registered in :mod:`explorer.colour_columns`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pretrain import config

MAX_TAG_CHARS = 60
COLOUR_PREFIX = "tag: "
TAGGED, NOT_TAGGED = "tagged", "not tagged"


def clean_tag(text: str) -> str:
    """A tag as stored: spaces collapsed, trimmed, at most MAX_TAG_CHARS ('' for nothing)."""
    return re.sub(r"\s+", " ", str(text)).strip()[:MAX_TAG_CHARS]


def parse_tags(text: str) -> list[str]:
    """'bent, WAT ,  bent' -> ['bent', 'WAT']: commas separate tags; order kept, repeats dropped."""
    tags: list[str] = []
    for part in str(text).split(","):
        tag = clean_tag(part)
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def tag_log_path(space_key: str) -> Path:
    """The space's log: a readable name plus a hash of the key (keys hold paths and colons)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", space_key).strip("-")[-40:] or "space"
    digest = hashlib.sha256(space_key.encode()).hexdigest()[:12]
    return config.cache_dir() / "tags" / f"{slug}-{digest}.jsonl"


class TagStore:
    """The tags of one space, read from and appended to its log."""

    def __init__(self, space_key: str, path: Path | None = None):
        self.space_key = space_key
        self.path = Path(path) if path is not None else tag_log_path(space_key)

    def add(self, source_ids: Iterable[str], tags: Iterable[str]) -> int:
        """Tag every source with every tag; returns the lines written."""
        return self._append("add", source_ids, tags)

    def remove(self, source_ids: Iterable[str], tags: Iterable[str]) -> int:
        return self._append("remove", source_ids, tags)

    def _append(self, op: str, source_ids: Iterable[str], tags: Iterable[str]) -> int:
        clean = [t for t in (clean_tag(t) for t in tags) if t]
        now = round(time.time(), 3)
        lines = [
            json.dumps({"op": op, "source_id": str(s), "tag": t, "t": now}, ensure_ascii=False) + "\n"
            for s in source_ids
            for t in clean
        ]
        if not lines:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(lines).encode("utf-8")
        with open(self.path, "ab") as file:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            try:
                file.write(data)  # one write of whole lines, under the lock
                file.flush()
                os.fsync(file.fileno())
            finally:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
        return len(lines)

    def _records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, "rb") as file:
            fcntl.flock(file.fileno(), fcntl.LOCK_SH)
            try:
                raw = file.read()
            finally:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
        records = []
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("op") in ("add", "remove"):
                records.append(record)
        return records

    def tags_by_source(self) -> dict[str, set[str]]:
        """source_id -> its current tags (the log replayed in order)."""
        current: dict[str, set[str]] = {}
        for record in self._records():
            source, tag = str(record.get("source_id", "")), str(record.get("tag", ""))
            if record["op"] == "add":
                current.setdefault(source, set()).add(tag)
            else:
                current.get(source, set()).discard(tag)
        return {s: tags for s, tags in current.items() if tags}

    def tag_counts(self) -> dict[str, int]:
        """Every tag in use and how many sources carry it (by name)."""
        counts: dict[str, int] = {}
        for tags in self.tags_by_source().values():
            for tag in tags:
                counts[tag] = counts.get(tag, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: kv[0].lower()))

    def members(self, tag: str) -> list[str]:
        """The source ids that carry ``tag`` (sorted)."""
        return sorted(s for s, tags in self.tags_by_source().items() if tag in tags)

    def version(self) -> tuple[int, int]:
        """Changes whenever the log does (a cache key)."""
        try:
            stat = self.path.stat()
        except OSError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_size)


def tag_column(catalogue: pd.DataFrame, tags_by_source: dict[str, set[str]]) -> pd.Series:
    """Each catalogue row's tags as one text ('a; b', '' for none), for tables and exports."""
    ids = catalogue["source_id"].astype(str)
    return ids.map(lambda s: "; ".join(sorted(tags_by_source.get(s, ()), key=str.lower))).rename("tags")


def tag_set_frame(catalogue: pd.DataFrame, store: TagStore, tag: str) -> pd.DataFrame:
    """The catalogue rows carrying ``tag``, with all their tags (what the CSV / VOTable hold)."""
    from explorer.selection_table import HIDDEN_COLUMNS

    members = set(store.members(tag))
    rows = catalogue[catalogue["source_id"].astype(str).isin(members)]
    columns = [c for c in catalogue.columns if c not in HIDDEN_COLUMNS]
    frame = rows[columns].reset_index(drop=True)
    frame["tags"] = tag_column(rows, store.tags_by_source()).to_numpy()
    return frame


def tag_colour_columns(space) -> dict[str, pd.Series]:
    """'tag: NAME' -> 'tagged' / 'not tagged' for every source (a colour provider)."""
    store = TagStore(space.key)
    by_source = store.tags_by_source()
    if not by_source:
        return {}
    ids = space.catalogue["source_id"].astype(str)
    columns = {}
    for tag in store.tag_counts():
        carrying = {s for s, tags in by_source.items() if tag in tags}
        values = [TAGGED if s in carrying else NOT_TAGGED for s in ids]
        columns[COLOUR_PREFIX + tag] = pd.Series(values, index=ids.to_numpy(), name=COLOUR_PREFIX + tag)
    return columns
