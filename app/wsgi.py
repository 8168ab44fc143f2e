"""WSGI entry points for production servers: ``gunicorn app.wsgi:app`` serves everything;
``app.wsgi:media_app`` and ``app.wsgi:api_app`` serve only the media streams or only the rest
(``consent-replay web --serve media|api``), for two pools behind one proxy, so that a revoke
never queues behind streams for a thread."""

from app import create_app
from app.factory import serving_only

app = create_app()
media_app = serving_only(app, media=True)
api_app = serving_only(app, media=False)
