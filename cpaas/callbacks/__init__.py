"""Scheduled callbacks: a click2call placed at a future time in the caller's zone."""
