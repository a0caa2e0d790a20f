"""Model versions: list, inspect, download and delete exported bundles."""
