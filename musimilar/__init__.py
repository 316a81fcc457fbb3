"""musimilar: learn what a music library sounds like, with no labels, and find songs that sound alike."""

__version__ = "0.1.0"
