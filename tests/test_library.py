"""The library façade: one ready home shared by queries, reopened when the files under it change; and the stored
embedding of a library track equals the embedding of the same file asked as an outside query."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from musimilar.embed import embed_file
from musimilar.embeddings import load_embeddings, save_embeddings
from musimilar.home import Home
from musimilar.library import Library


def test_a_library_tracks_stored_embedding_equals_its_embedding_as_a_query(trained_home) -> None:
    home, _, tracks = trained_home
    with Library.open(home.root, create=False) as library:
        ready = library.ready()
        for track in tracks:
            stored = ready.catalog.track_by_path(track.path.resolve())
            cosine = float(ready.stored_vector(stored.id) @ embed_file(ready.model, track.path))
            assert cosine > 0.999, (track.path.name, cosine)


def test_queries_share_one_ready_home_until_its_files_change(trained_home, tmp_path: Path) -> None:
    copy = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path / "home")))
    with Library.open(copy.root, create=False) as library:
        first = library.ready()
        assert library.ready() is first
        before = library.recommend(["1"], k=3)
        table = load_embeddings(copy.embeddings_dir, mmap=False)
        save_embeddings(copy.embeddings_dir, table.subset(table.track_ids != before[0].track_id))
        second = library.ready()
        assert second is not first and len(second.table) == len(table) - 1
        after = library.recommend(["1"], k=3)
    assert before[0].track_id not in {r.track_id for r in after}
    assert [r.track_id for r in after[:2]] == [r.track_id for r in before[1:]]


def test_the_index_check_measures_recall_with_each_querys_own_track_left_out(trained_home) -> None:
    from musimilar.index import exact_neighbours

    with Library.open(trained_home[0].root, create=False) as library:
        check = library.check_index()
        table = library.ready().table
    assert (check.sample, check.delta) == (32, 0) and check.recall_at_10 > 0.9
    rows = np.arange(len(table))
    truth = exact_neighbours(table, rows, 10)
    assert truth.shape == (32, 10) and not (truth == rows[:, None]).any()


def test_a_checked_answer_reads_the_files_state_once(trained_home, tmp_path: Path, monkeypatch) -> None:
    import musimilar.ready

    copy = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path / "home")))
    reads = []
    real = musimilar.ready.disk_state
    monkeypatch.setattr(musimilar.ready, "disk_state", lambda files: reads.append(files) or real(files))
    with Library.open(copy.root, create=False) as library:
        library.recommend([1], k=3)
        reads.clear()
        with library.checked_current() as current:
            assert current
            library.recommend([1], k=3)
        assert len(reads) == 1  # the check, not again for the answer
        library.recommend([1], k=3)
        assert len(reads) == 2  # outside, every answer looks
        table = load_embeddings(copy.embeddings_dir, mmap=False)
        save_embeddings(copy.embeddings_dir, table.subset(table.track_ids != 2))
        with library.checked_current() as current:
            assert not current  # rewritten: a server sends the answer to a worker, which opens the files again


def test_another_thread_still_looks_at_the_disk_while_one_is_checked(trained_home, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    copy = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path / "home")))
    with Library.open(copy.root, create=False) as library:
        first = library.ready()
        with library.checked_current() as current:
            assert current
            table = load_embeddings(copy.embeddings_dir, mmap=False)
            save_embeddings(copy.embeddings_dir, table.subset(table.track_ids != 2))
            with ThreadPoolExecutor(1) as other:
                reopened = other.submit(library.ready).result()
        assert reopened is not first and len(reopened.table) == len(table) - 1
