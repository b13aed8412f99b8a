"""Call detail records: the writer fed by engine events, queries and statistics."""
