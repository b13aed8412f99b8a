"""`make run` and `make test` as a new user runs them: in this checkout and on a fresh Debian root."""
