"""refresh-patch: ``meta.py`` chooses the version and builds meta.json (pure); ``job.py`` does the I/O."""
