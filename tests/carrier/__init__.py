"""Tests of the sandbox carrier (sandbox_carrier/), driven by real SIP callers."""
