"""Model-card validation and registry building for the ``refresh-registry`` job."""
