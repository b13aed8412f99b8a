"""The account's files in object storage (CSV contact lists, WAV announcements)."""
