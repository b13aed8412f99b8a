"""cpaas: a self-hosted voice platform (click-to-call, OTP calls, campaigns, CDRs)."""
