"""Feedback on predictions: verdicts, kept images, and the datasets made from them."""
