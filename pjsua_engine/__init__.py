"""The embedded engine: call plans executed by a pool of PJSUA2 worker processes.

``EmbeddedEngine`` (in :mod:`pjsua_engine.engine`) is what services use; the pool
(``python -m pjsua_engine``) runs the worker processes that place the calls.
"""
