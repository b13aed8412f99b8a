"""WSGI entry point: ``gunicorn app:app`` (see Procfile)."""
from cpaas.app import create_app

app = create_app()
