"""Entry point for ``celery -A worker.entry``: the worker's Celery app, from the settings."""

from app.config import load_settings
from app.logs import configure_logging
from worker.celery_app import create_celery

settings = load_settings()
configure_logging(settings.log_level)
celery = create_celery(settings)
