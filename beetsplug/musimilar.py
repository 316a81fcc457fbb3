"""beets plugin: `beet similar QUERY` answers from the musimilar home that mirrors the beets library, and
`beet import` keeps that home up to date (incremental convert and embed of the newly imported files).

Enable it with `plugins: musimilar` in beets' config.yaml; its settings, all optional:

    musimilar:
        home: ~/.local/share/musimilar   # default: $MUSIMILAR_HOME, else the user data directory
        config: null                     # a musimilar.toml other than the home's
        auto: yes                        # convert and embed what `beet import` adds
        k: 10
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from beets import ui
from beets.dbcore.query import PathQuery
from beets.plugins import BeetsPlugin


class MusimilarPlugin(BeetsPlugin):
    def __init__(self) -> None:
        super().__init__("musimilar")
        self.config.add({"home": None, "config": None, "auto": True, "k": 10})
        self.imported: list[Path] = []
        if self.config["auto"].get(bool):
            self.register_listener("item_imported", self._item_imported)
            self.register_listener("album_imported", self._album_imported)
            self.register_listener("import", self._import_finished)

    def commands(self) -> list[ui.Subcommand]:
        command = ui.Subcommand("similar", help="list the tracks that sound most like the matched tracks")
        command.parser.add_option("-k", type="int", dest="k", help="how many tracks (default: 10)")
        command.parser.add_option("--playlist", dest="playlist", metavar="FILE", help="also write an M3U8 playlist")
        command.func = self._similar
        return [command]

    def _library(self, create: bool = False) -> Any:
        from musimilar.home import resolve_home
        from musimilar.library import Library

        home = self.config["home"].get()
        config = self.config["config"].get()
        return Library.open(
            resolve_home(Path(home).expanduser() if home else None),
            create=create,
            config=Path(config).expanduser() if config else None,
        )

    def _similar(self, lib: Any, opts: Any, args: list[str]) -> None:
        from musimilar.errors import MusimilarError

        items = list(lib.items(args))
        if not items:
            raise ui.UserError(f"no track matches {' '.join(args)!r}")
        k = opts.k or self.config["k"].get(int)
        try:
            results = self._library().recommend([os.fsdecode(item.path) for item in items], k)
        except MusimilarError as error:
            raise ui.UserError(f"musimilar: {error.message}") from None
        for result in results:
            known = lib.items(PathQuery("path", os.fsencode(result.path))).get()
            line = format(known) if known is not None else result.path
            ui.print_(f"{result.similarity:.3f}  {line}")
        if opts.playlist:
            _write_playlist(Path(opts.playlist), [r.path for r in results])
            self._log.info("wrote {}", opts.playlist)

    def _item_imported(self, lib: Any, item: Any) -> None:
        self.imported.append(Path(os.fsdecode(item.path)))

    def _album_imported(self, lib: Any, album: Any) -> None:
        self.imported += [Path(os.fsdecode(item.path)) for item in album.items()]

    def _import_finished(self, lib: Any, paths: Any) -> None:
        """Convert the imported files, then embed them when the home has a model (else say what to run)."""
        from musimilar.errors import MusimilarError, NotReadyError

        files, self.imported = self.imported, []
        if not files:
            return
        try:
            library = self._library(create=True)
            converted = library.convert(files)
            self._log.info(
                "{} imported files: {} converted, {} failed", len(files), converted.converted, len(converted.failed)
            )
            embedded = library.embed()
            self._log.info("embedded {} tracks", embedded.embedded)
        except NotReadyError as error:
            self._log.info("not embedded yet: {}", error.message)
        except MusimilarError as error:
            self._log.warning("{}", error.message)


def _write_playlist(path: Path, tracks: list[str]) -> None:
    from musimilar.playlists import entries_for, m3u8_text, write_playlist

    write_playlist(path, m3u8_text(entries_for(tracks)))
