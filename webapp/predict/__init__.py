"""Prediction: the drag-and-drop page and the JSON API, served by Paddle Inference."""
