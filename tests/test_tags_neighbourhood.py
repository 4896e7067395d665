"""Tags (kept on disk, safe under concurrent writers) and neighbourhood measures on synthetic clusters."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

from explorer.neighbourhood import knn_outlier_scores, label_purity, map_trust, most_unusual
from explorer.similarity import CosineIndex
from explorer.tags import NOT_TAGGED, TAGGED, TagStore, parse_tags, tag_colour_columns, tag_set_frame

N_EACH = 150  # tag lines each process writes


def _tag_many(path: str, who: str) -> None:
    store = TagStore("space:x", path=__import__("pathlib").Path(path))
    for i in range(N_EACH):
        store.add([f"{who}-{i}"], [f"by {who}"])  # one locked append per line: the worst case for interleaving


def test_two_processes_tagging_at_once_lose_nothing(tmp_path):
    path = tmp_path / "tags.jsonl"
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_tag_many, args=(str(path), who)) for who in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    reloaded = TagStore("space:x", path=path)  # a fresh reader: everything comes from disk
    assert reloaded.tag_counts() == {"by a": N_EACH, "by b": N_EACH}
    assert len(path.read_text().splitlines()) == 2 * N_EACH  # whole lines, none torn


def test_tags_survive_a_restart_and_removals_replay(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path))
    TagStore("default:mirabest").add(["s1", "s2", "s3"], parse_tags("bent, WAT, bent"))
    TagStore("default:mirabest").remove(["s2"], ["WAT"])
    TagStore("other space").add(["s1"], ["elsewhere"])  # another space's log
    store = TagStore("default:mirabest")  # "after a restart": a new object, the same log
    assert store.tags_by_source() == {"s1": {"bent", "WAT"}, "s2": {"bent"}, "s3": {"bent", "WAT"}}
    assert store.tag_counts() == {"bent": 3, "WAT": 2} and store.members("WAT") == ["s1", "s3"]
    with open(store.path, "a") as f:
        f.write('{"op": "add", "source_id": "s9", "ta')  # a write cut short by a crash
    assert "s9" not in TagStore("default:mirabest").tags_by_source()


def test_tag_colours_and_tag_set_export(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path))
    catalogue = pd.DataFrame(
        {"source_id": ["s1", "s2", "s3"], "ra": [1.0, 2.0, 3.0], "dec": [0.0, -1.0, 1.0], "umap_x": [0, 1, 2]}
    )

    class Space:
        key = "space:t"

    space = Space()
    space.catalogue = catalogue  # type: ignore[attr-defined]
    assert tag_colour_columns(space) == {}
    TagStore("space:t").add(["s2", "s3"], ["bent"])
    TagStore("space:t").add(["s3"], ["odd"])
    columns = tag_colour_columns(space)
    assert set(columns) == {"tag: bent", "tag: odd"}
    assert columns["tag: bent"].reindex(["s1", "s2", "s3"]).tolist() == [NOT_TAGGED, TAGGED, TAGGED]
    frame = tag_set_frame(catalogue, TagStore("space:t"), "bent")
    assert frame["source_id"].tolist() == ["s2", "s3"] and frame["tags"].tolist() == ["bent", "bent; odd"]
    assert "umap_x" not in frame


def _clusters(seed: int = 0):
    """Three tight clusters of 20 in 32-d, and one vector far from all of them (row 60)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(32)[:3] * 10
    vectors = np.concatenate([c + rng.normal(0, 0.3, (20, 32)) for c in centres])
    outlier = rng.normal(0, 1, 32)
    outlier[:3] = -5  # pointing away from every cluster
    vectors = np.vstack([vectors, outlier])
    labels = ["FRI"] * 20 + ["FRII"] * 20 + [""] * 20 + ["FRI"]
    map_xy = np.concatenate([np.array([x, 0.0]) + rng.normal(0, 0.1, (20, 2)) for x in (0.0, 5.0, 10.0)])
    map_xy = np.vstack([map_xy, [[20.0, 20.0]]])
    return vectors, labels, map_xy


def test_the_outlier_ranks_first_and_cluster_members_low():
    vectors, _, _ = _clusters()
    scores = knn_outlier_scores(vectors, k=5, block=7)  # blocks that do not divide n
    assert most_unusual(scores, 1).tolist() == [60]
    assert scores[60] > 0.9 and scores[:60].max() < 0.1
    # the same as brute force
    index = CosineIndex().fit(vectors)
    brute = [1.0 - index.query_index(i, 5)[1][-1] for i in range(len(vectors))]
    np.testing.assert_allclose(scores, brute, atol=1e-5)


def test_a_space_refined_under_the_same_name_gets_its_own_outlier_scores():
    """The quick first map and its refinement: same key, same size, other vectors. The scores
    follow the opened space, not its name (they stayed the quick map's until a restart)."""
    from explorer.neighbourhood import space_outlier_scores
    from explorer.space_registry import ExplorerSpace

    vectors, _, _ = _clusters()

    class Opened(ExplorerSpace):
        has_embeddings, key = True, "default:mirabest"

        def __init__(self, unit_vectors):
            self.catalogue = pd.DataFrame({"source_id": [f"S{i}" for i in range(len(unit_vectors))]})
            self.index = CosineIndex().fit(unit_vectors)

    quick, refined = Opened(vectors), Opened(vectors[::-1].copy())
    first = space_outlier_scores(quick)
    assert space_outlier_scores(quick) is first  # computed once per opened space
    np.testing.assert_allclose(space_outlier_scores(refined), first[::-1], atol=1e-6)
    assert most_unusual(space_outlier_scores(refined), 1).tolist() == [0]  # the outlier, now first in order


def test_label_purity_of_a_cluster_member_and_of_a_mixed_list():
    vectors, labels, _ = _clusters()
    rows, _ = CosineIndex().fit(vectors).query_index(3, 10)
    purity = label_purity(labels, 3, rows)
    assert (purity.same, purity.labelled, purity.fraction) == (10, 10, 1.0)
    mixed = label_purity(labels, 3, [1, 2, 25, 45, 46])  # 2 FRI, 1 FRII, 2 unlabelled
    assert (mixed.same, mixed.labelled, mixed.total) == (2, 3, 5) and mixed.counts == {"FRI": 2, "FRII": 1}
    unlabelled = label_purity(labels, 45, rows)  # a source without a label: counts, no purity
    assert np.isnan(unlabelled.fraction) and unlabelled.counts == {"FRI": 10}


def test_map_trust_is_high_on_a_faithful_map_and_low_on_a_shuffled_one():
    vectors, _, map_xy = _clusters()
    rows, _ = CosineIndex().fit(vectors).query_index(3, 10)
    assert map_trust(map_xy, 3, rows) == pytest.approx(1.0, abs=0.5)  # within its cluster on the map
    # a stricter check: within its cluster of 20, k = 19 is the whole cluster on both sides
    rows19, _ = CosineIndex().fit(vectors).query_index(3, 19)
    assert map_trust(map_xy, 3, rows19) == 1.0
    shuffled = np.random.default_rng(1).permutation(map_xy)
    assert map_trust(shuffled, 3, rows19) < 0.6
