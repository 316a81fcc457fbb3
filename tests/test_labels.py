"""Labels: reading label files, the preference file > tags > folder, and the default --by."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from musimilar.catalog import Catalog, Track
from musimilar.errors import MusimilarError
from musimilar.home import Home
from musimilar.labels import (
    apply_labels,
    default_by,
    import_labels,
    label_of,
    read_label_csv,
    with_labels,
)


def track(path: str, **labels: str) -> Track:
    return Track(1, path, 0, 0, "", 1, "ok", None, None, None, None, labels)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def test_reads_relative_and_absolute_paths_and_several_columns(tmp_path: Path) -> None:
    csv_file = write(
        tmp_path / "meta" / "labels.csv",
        "Path,Genre,artist,album\n"
        "../music/a.mp3,Jazz,Ann,First\n"
        "\n"
        f"{tmp_path / 'elsewhere' / 'b.flac'}, Rock ,,Second\n"
        '"../music/with, comma.wav",Pop,Cy,\n',
    )
    assert read_label_csv(csv_file) == {
        (tmp_path / "music" / "a.mp3").resolve(): {"genre": "Jazz", "artist": "Ann", "album": "First"},
        (tmp_path / "elsewhere" / "b.flac").resolve(): {"genre": "Rock", "album": "Second"},
        (tmp_path / "music" / "with, comma.wav").resolve(): {"genre": "Pop", "artist": "Cy"},
    }


def test_reads_a_path_label_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "labels.csv", "path,label\r\na.wav,one\r\n", encoding="utf-8-sig")
    assert read_label_csv(csv_file) == {(tmp_path / "a.wav").resolve(): {"label": "one"}}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty label file"),
        ("file,genre\na.wav,x\n", "line 1: the header's first column must be 'path'"),
        ("path\na.wav\n", "line 1: no label columns after 'path'"),
        ("path,genre,Genre\na.wav,x,y\n", "line 1: column 'genre' appears twice"),
        ("path,genre,\na.wav,x,y\n", "line 1: column 3 has no name"),
        ("path,genre\na.wav,x\nb.wav\n", "line 3: expected 2 fields (path,genre), got 1"),
        ("path,genre\n\na.wav,x,extra\n", "line 3: expected 2 fields (path,genre), got 3"),
        ("path,genre\na.wav,x\n./a.wav,y\n", "line 3: ./a.wav is listed twice (first on line 2)"),
        ("path,genre\n ,x\n", "line 2: empty path"),
    ],
)
def test_a_bad_label_file_is_one_line_naming_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    csv_file = write(tmp_path / "labels.csv", text)
    with pytest.raises(MusimilarError) as raised:
        read_label_csv(csv_file)
    assert str(raised.value).startswith(f"{csv_file}: {problem}")
    assert "\n" not in str(raised.value)


def test_a_missing_or_binary_label_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MusimilarError, match="no such label file"):
        read_label_csv(tmp_path / "absent.csv")
    binary = tmp_path / "labels.csv"
    binary.write_bytes(b"path,genre\n\xff\xfe\x00a,b\n")
    with pytest.raises(MusimilarError, match="not UTF-8 text"):
        read_label_csv(binary)


def test_label_of_reads_the_key_and_falls_back_to_the_folder_for_folder() -> None:
    tagged = track("/music/jazz/a.mp3", genre=" Jazz ", artist="", folder="jazz")
    assert label_of(tagged, "genre") == "Jazz"
    assert label_of(tagged, "artist") is None
    assert label_of(tagged, "album") is None
    assert label_of(tagged, "folder") == "jazz"
    assert label_of(track("/music/rock/b.mp3"), "folder") == "rock"  # registered before "folder" was stored


def test_default_by_prefers_label_then_genre_then_folder() -> None:
    assert default_by([track("/a/x.wav", folder="a"), track("/b/y.wav", genre="", label="")]) == "folder"
    assert default_by([track("/a/x.wav", folder="a"), track("/b/y.wav", genre="Rock")]) == "genre"
    assert default_by([track("/a/x.wav", genre="Rock"), track("/b/y.wav", label="mine")]) == "label"


def register(catalog: Catalog, folder: Path, names: list[str]) -> list[Path]:
    paths = [write(folder / name, name) for name in names]  # sync only hashes the bytes: no audio needed
    catalog.sync(paths, [folder])
    return paths


def test_apply_labels_stores_file_values_over_tags_and_reports_unmatched(tmp_path: Path) -> None:
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        a, b = register(catalog, tmp_path / "music" / "jazz", ["a.wav", "b.wav"])
        ids = {Path(t.path): t.id for t in catalog.tracks(status=None)}
        catalog.set_labels({ids[a]: {"genre": "tag genre", "artist": "tag artist"}})  # as convert stores tags
        csv_file = write(tmp_path / "labels.csv", "path,genre\nmusic/jazz/a.wav,Bebop\nmusic/absent.wav,Rock\n")
        matched, unmatched = apply_labels(catalog, read_label_csv(csv_file))
        stored = {Path(t.path): t.labels for t in catalog.tracks(status=None)}
    assert (matched, unmatched) == (1, [(tmp_path / "music" / "absent.wav").resolve()])
    assert stored[a] == {"folder": "jazz", "genre": "Bebop", "artist": "tag artist"}
    assert stored[b] == {"folder": "jazz"}


def test_with_labels_lays_a_file_over_tracks_without_writing(tmp_path: Path) -> None:
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        (a,) = register(catalog, tmp_path / "music", ["a.wav"])
        tracks = catalog.tracks(status=None)
        merged, unmatched = with_labels(tracks, {a.resolve(): {"genre": "Jazz"}, tmp_path / "x.wav": {"genre": "y"}})
        assert catalog.tracks(status=None)[0].labels == {"folder": "music"}
    assert merged[0].labels == {"folder": "music", "genre": "Jazz"}
    assert unmatched == [tmp_path / "x.wav"]


def test_a_label_file_wins_over_tags_read_at_convert(tmp_path: Path, audio_files: dict[str, Path]) -> None:
    import mutagen

    from musimilar.convert import convert
    from musimilar.settings import Settings

    folder = tmp_path / "music" / "chill"
    folder.mkdir(parents=True)
    tagged, untagged = folder / "tagged.flac", folder / "untagged.flac"
    for path in (tagged, untagged):
        shutil.copy(audio_files["flac_mono_22050"], path)
    tags = mutagen.File(str(tagged), easy=True)
    tags.update({"genre": "Ambient", "artist": "Tag Artist"})
    tags.save()
    home = Home.open(tmp_path / "home")
    convert(home, [folder], Settings(), workers=1)
    csv_file = write(tmp_path / "labels.csv", "path,genre\nmusic/chill/tagged.flac,Downtempo\n")
    imported = import_labels(home, read_label_csv(csv_file))
    with Catalog(home.catalog_path) as catalog:
        labels = {Path(t.path).name: t for t in catalog.tracks()}
    assert (imported.matched, imported.unmatched, imported.keys) == (1, [], ["genre"])
    assert label_of(labels["tagged.flac"], "genre") == "Downtempo"  # the file's genre over the tag's
    assert label_of(labels["tagged.flac"], "artist") == "Tag Artist"  # the tag, where the file says nothing
    assert label_of(labels["untagged.flac"], "genre") is None
    assert label_of(labels["untagged.flac"], "folder") == "chill"


def test_supervised_training_reads_labels_through_label_of(tmp_path: Path) -> None:
    from musimilar.settings import load_settings
    from musimilar.train import _open_training_data

    home = Home.open(tmp_path / "home")
    with Catalog(home.catalog_path) as catalog:
        a, b, c = register(catalog, tmp_path / "music", ["a.wav", "b.wav", "c.wav"])
        apply_labels(catalog, {a: {"genre": "x"}, b: {"genre": "x"}})
        ids = {Path(t.path): t.id for t in catalog.tracks(status=None)}
        catalog.connection.execute("UPDATE tracks SET status = 'ok'")
        for shard_offset, path in enumerate((a, b, c)):
            catalog.connection.execute("INSERT INTO spectrograms VALUES (?, 0, ?, 10)", (ids[path], shard_offset * 10))
    settings = load_settings(flags={"train.loss": "supcon", "train.by": "genre"}, environ={})
    library = _open_training_data(home, settings)
    labels = dict(zip(library.track_ids, library.labels.tolist()))
    assert labels[ids[a]] == labels[ids[b]] != labels[ids[c]]  # c has no genre: a label of its own
