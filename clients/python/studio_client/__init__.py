"""A typed client for the image-classification studio's JSON API, and the `studio` command line on it."""
from studio_client.client import Studio, StudioAPIError
from studio_client.models import (AuditEntry, Dataset, Job, JobEvent, ModelVersion, Prediction, Release, ReviewItem,
                                  Revision)

__all__ = ["AuditEntry", "Dataset", "Job", "JobEvent", "ModelVersion", "Prediction", "Release", "ReviewItem",
           "Revision", "Studio", "StudioAPIError"]
