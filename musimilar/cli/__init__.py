"""The command-line interface: parse, call one library function, render."""

import os

# pydantic looks for plugins among every installed package's entry points when the first settings model is built;
# musimilar uses none, and the scan costs a cold command tens of milliseconds.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
