"""FreeSWITCH engine (ESL over TCP with greenswitch): the design card's production engine.

Not part of this release: it is the ROADMAP's "FreeSWITCH engine" capability, to be
built once every call-plan verb exists. It will implement
``cpaas.telephony.engine.Engine`` and feed the same events stream as the embedded
engine. Until then ``cpaas.telephony.engines.get_engine`` refuses a configured
``FREESWITCH_ESL`` with a clear error instead of silently using another engine.
"""
