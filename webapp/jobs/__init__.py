"""Training jobs: start, cancel, list, and follow them live."""
