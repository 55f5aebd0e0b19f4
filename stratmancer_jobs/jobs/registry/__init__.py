"""refresh-registry: ``cards.py`` validates, chooses and diffs (pure); ``job.py`` reads cards and writes.

``served.py`` (pure) applies the app's file-name rule; not wired into the job yet.
"""
