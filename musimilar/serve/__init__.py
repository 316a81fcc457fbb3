"""`musimilar serve`: a local web page (and its JSON API) to browse, listen, follow a radio and see the map."""
