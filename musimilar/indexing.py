"""The home's index as a step of the flow: build it from the stored embeddings, or check it against exact search."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from musimilar.embeddings import EmbeddingTable, load_embeddings
from musimilar.errors import NotReadyError
from musimilar.home import Home
from musimilar.index import build_index, measure_recall, open_searcher
from musimilar.neighbours import build_neighbours
from musimilar.settings import IndexSettings

RECALL_K = 10
RECALL_SAMPLE = 1000  # queries compared with exact search by `check_index`


@dataclass
class IndexReport:
    count: int
    dim: int
    trees: int
    metric: str
    model_fingerprint: str
    seconds: float
    directory: str

    def as_dict(self) -> dict[str, Any]:
        summary = asdict(self)
        summary.pop("directory")
        summary["seconds"] = round(self.seconds, 3)
        return summary


@dataclass
class IndexCheck:
    recall_at_10: float  # each query's own track excluded, as in bench/index.py
    sample: int
    delta: int  # tracks embedded after the build, searched exactly beside the index

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stored_embeddings(home: Home, remedy: str) -> EmbeddingTable:
    table = load_embeddings(home.embeddings_dir)
    if table is None:
        raise NotReadyError(f"{home.root}: no embeddings {remedy}")
    return table.post_processed()  # the index holds the vectors that are searched


def index_home(home: Home, settings: IndexSettings) -> IndexReport:
    """Build the Annoy index of the home's stored embeddings (atomically, with its sidecar) and each track's
    neighbour list (musimilar.neighbours)."""
    table = _stored_embeddings(home, "to index (run `musimilar embed`)")
    started = time.perf_counter()
    info = build_index(table, home.index_dir, settings.trees, settings.metric)
    build_neighbours(table, home.index_dir)  # after the index: a server never holds lists newer than its index
    seconds = time.perf_counter() - started
    return IndexReport(
        info.count, info.dim, info.trees, info.metric, info.model_fingerprint, seconds, str(home.index_dir)
    )


def check_index(home: Home, settings: IndexSettings) -> IndexCheck:
    """Recall@10 of the home's index against exact search, on a sample of the library's own tracks."""
    table = _stored_embeddings(home, "(run `musimilar embed`)")
    searcher = open_searcher(table, home.index_dir, settings.model_copy(update={"exact_below": 0}))
    if searcher.mode != "annoy":
        raise NotReadyError(f"{home.root}: no index to check (run `musimilar index`)")
    recall = measure_recall(table, searcher, k=RECALL_K, sample=RECALL_SAMPLE)
    return IndexCheck(recall, min(len(table), RECALL_SAMPLE), searcher.delta_size)
