"""Celery worker: thin tasks that call the engine."""
