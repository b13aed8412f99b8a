"""The embedded engine: call plans executed by a pool of PJSUA2 worker processes.

:class:`pjsua_engine.client.EmbeddedClient` is what web and RQ processes use to hand
plans to the pool; the pool (``python -m pjsua_engine``) runs the worker processes that
place the calls. Only what is PJSUA2's own lives here: what every engine does (events,
live legs, recordings, per-call prompts, the outcome table) is in ``cpaas.telephony``.
"""
