"""Entry point for ``celery -A worker.entry``: builds the Flask app, then its Celery app."""

from app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
