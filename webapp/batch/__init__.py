"""Batch prediction: every image of an uploaded zip or folder, or of a dataset revision, classified by one model
version in the background (a batch worker, on the one lifecycle), with the same answers as POST /api/predict,
written to CSV and JSON Lines files as the run goes."""
