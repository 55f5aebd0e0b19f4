"""The history index: exact champion / pair / counter win rates per tier and elo group.

Private modules, pure apart from ``sources`` (reads input files) and ``cache`` / ``build`` (write
through ``atomicio``):

* ``tiers``     -- tier and group names, input file names, canonical processing order
* ``records``   -- decoding and validating match records (schema-aware msgspec decoder)
* ``counts``    -- dense per-champion counters, deduplication by match_id, serialisation
* ``aggregate`` -- thresholds and rounding -> the StratMancer-compatible index, deterministic bytes
* ``sources``   -- the one place input files are stat'ed, fingerprinted and read
* ``cache``     -- the incremental state (checkpoints, seen ids, counts), crash-safe and validated
* ``parallel``  -- building and rendering entries on the second core (fork), with a serial fallback
* ``build``     -- the refresh itself: plan, read, count, write
"""
