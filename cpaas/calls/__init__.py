"""Calls: click2call, OTP calls, announce templates, live calls, modify_call, recordings."""
