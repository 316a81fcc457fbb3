"""Use musimilar from Python: recommendations for a file, and the embedding of any audio file.

    python examples/library_api.py HOME QUERY [K]

HOME is a trained library home (`musimilar train DIR --home HOME`); QUERY is an audio file, in the library or not.
The CLI does the same through `musimilar recommend QUERY --home HOME`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from musimilar.catalog import Catalog
from musimilar.embed import embed_file, open_model
from musimilar.embeddings import load_embeddings
from musimilar.errors import MusimilarError, NotReadyError
from musimilar.home import Home
from musimilar.recommend import Recommender
from musimilar.settings import load_settings


def show_recommendations(home: Home, query: Path, k: int) -> None:
    """The k tracks of the library that sound most like `query`, best first."""
    settings = load_settings(home=home.root)  # the home's musimilar.toml and MUSIMILAR_* variables, as the CLI
    recommender = Recommender(home, settings.index)  # loads the model, the embeddings and the index once
    try:
        for result in recommender.recommend([str(query)], k):
            label = result.labels.get("genre") or result.labels.get("folder", "")
            print(f"{result.rank:3d}  {result.similarity:.3f}  {result.path}  {label}")
    finally:
        recommender.close()


def show_embedding(home: Home, query: Path) -> None:
    """Embed a file with the home's current model and compare it with the stored embeddings of the library."""
    model = open_model(home, None, torch.device("cpu"))  # None: the home's current model
    vector = embed_file(model, query)  # [D], unit length; the audio and mel settings come from the model file
    table = load_embeddings(home.embeddings_dir)  # one unit vector per catalog track
    if table is None or table.model_fingerprint != model.fingerprint:
        raise NotReadyError(f"{home.root}: no embeddings of the current model (run `musimilar embed`)")
    cosines = np.asarray(table.vectors) @ vector  # [N]
    best = int(np.argmax(cosines))
    with Catalog(home.catalog_path) as catalog:
        closest = catalog.track(int(table.track_ids[best]))
    print(f"embedding: {vector.shape[0]}-d, norm {np.linalg.norm(vector):.3f}, model {model.fingerprint}")
    print(f"closest stored track: {closest.path if closest else '?'} (cosine {cosines[best]:.3f})")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    query, k = Path(argv[1]), int(argv[2]) if len(argv) == 3 else 10
    try:
        home = Home.open(Path(argv[0]).expanduser().resolve(), create=False)
        show_recommendations(home, query, k)
        show_embedding(home, query)
    except MusimilarError as error:  # typed errors carry a one-line message and the CLI's exit code
        print(f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
