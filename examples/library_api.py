"""Use musimilar from Python: recommendations for a file, a short radio, and the embedding of any audio file.

    python examples/library_api.py HOME QUERY [K]

HOME is a trained library home (`musimilar train DIR --home HOME`); QUERY is an audio file, in the library or not.
The CLI does the same through `musimilar recommend QUERY --home HOME`: both drive the same `Library` object.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from musimilar.embed import embed_file
from musimilar.errors import MusimilarError
from musimilar.library import Library


def show_recommendations(library: Library, query: Path, k: int) -> None:
    """The k tracks of the library that sound most like `query`, best first, then a radio that plays on from it."""
    for result in library.recommend([str(query)], k):  # the model, embeddings and index load once, on first use
        label = result.labels.get("genre") or result.labels.get("folder", "")
        print(f"{result.rank:3d}  {result.similarity:.3f}  {result.path}  {label}")
    radio = library.radio([str(query)], count=3)
    print("radio: " + " -> ".join(Path(result.path).name for result in radio))


def show_embedding(library: Library, query: Path) -> None:
    """Embed a file with the home's current model and compare it with the stored embeddings of the library."""
    ready = library.ready()  # the same model, embeddings and searcher `recommend` used
    vector = embed_file(ready.model, query)  # [D], unit length; audio and mel settings come from the model file
    cosines = np.asarray(ready.table.vectors) @ vector  # [N]
    best = int(np.argmax(cosines))
    closest = ready.catalog.track(int(ready.table.track_ids[best]))
    print(f"embedding: {vector.shape[0]}-d, norm {np.linalg.norm(vector):.3f}, model {ready.model.fingerprint}")
    print(f"closest stored track: {closest.path if closest else '?'} (cosine {cosines[best]:.3f})")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    query, k = Path(argv[1]), int(argv[2]) if len(argv) == 3 else 10
    try:
        # The home's musimilar.toml and MUSIMILAR_* variables apply, as in the CLI.
        with Library.open(Path(argv[0]).expanduser().resolve(), create=False) as library:
            show_recommendations(library, query, k)
            show_embedding(library, query)
    except MusimilarError as error:  # typed errors carry a one-line message and the CLI's exit code
        print(f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
