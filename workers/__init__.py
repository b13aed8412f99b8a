"""RQ jobs (run by ``rq worker``, see Procfile)."""
