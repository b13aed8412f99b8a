"""Call transcription (issue 10): ``transcript: on`` turns a call's 2-channel recording
(agent left, customer right) into turns ``{speaker, start, end, text}`` in time order.

:mod:`.plan` says what a call records for its transcript, :mod:`.queueing` marks the CDR
``pending`` and queues the job once the call is settled, :mod:`.job` runs it in the
``transcriber`` process with a backend (:mod:`.whisper` offline by default, :mod:`.aws`
when ``CPAAS_TRANSCRIBE=aws``), :mod:`.turns` merges the channels, :mod:`.store` keeps
the result and the CDR's ``transcript_status``.
"""
