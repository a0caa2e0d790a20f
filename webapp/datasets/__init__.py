"""Datasets: upload, ingest, browse and delete labelled image collections."""
