"""Celery workers: transcoding, encryption and the scheduled clean-up jobs."""
