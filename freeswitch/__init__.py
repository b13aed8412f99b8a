"""FreeSWITCH engine over ESL (greenswitch): the design card's production engine.

``FREESWITCH_ESL`` (``host:port[,host:port…]``) makes :func:`cpaas.telephony.engine_client.
engine_client` return :class:`freeswitch.client.FreeSwitchClient`, which hands plans and
live-leg actions through Redis to one driver per node (:mod:`freeswitch.driver`, started
in the ``events`` process by :mod:`freeswitch.listener`). A driver holds that node's ESL
connection (:mod:`freeswitch.esl`: greenswitch with our own ``text/event-plain`` parser),
executes plans from the node's events (:mod:`freeswitch.runner`, with the embedded engine's plan
semantics)
with commands built only from whitelisted tokens (:mod:`freeswitch.commands`), and
publishes the engine contract's events (:mod:`cpaas.telephony.events`, statuses from
:mod:`cpaas.telephony.outcomes`) exactly like the embedded engine, so the CDRs match.
"""
