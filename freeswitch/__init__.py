"""FreeSWITCH engine (ESL over TCP with greenswitch): the design card's production engine.

Not part of this release: it is the ROADMAP's "FreeSWITCH engine" capability, to be
built once every call-plan verb exists. It will implement
``cpaas.telephony.engine_client.EngineClient`` and publish the engine contract's events
(``cpaas.telephony.events``, statuses from ``cpaas.telephony.outcomes``) like the embedded
engine. Until then ``cpaas.telephony.engine_client.engine_client`` refuses a configured
``FREESWITCH_ESL`` with a clear error instead of silently using another engine.
"""
