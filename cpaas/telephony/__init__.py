"""Telephony: call plans, the engine interface, TTS, audio and object storage helpers."""
