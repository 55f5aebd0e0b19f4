"""refresh-history: exact champion / pair / counter win rates per tier and elo group.

``job.py`` is the job's I/O edge (scan, read, write, summary); the rest, by concern:

* ``tiers``       -- tier and group names, input file names, canonical processing order (pure)
* ``filestat``    -- ``FileStat``, the one identity of a file (size, mtime, ctime, inode, fingerprint),
                     ``Buf`` and the byte helpers (pure)
* ``records``     -- decoding and validating match records, schema-aware msgspec decoder (pure)
* ``counts``      -- dense per-champion counters, deduplication by match_id (pure)
* ``aggregate``   -- thresholds and rounding -> the StratMancer-compatible index, deterministic bytes (pure)
* ``incremental`` -- checkpoints and the rules for extending a file's counts instead of rebuilding (pure)
* ``plan``        -- which entries the new index holds (fresh or kept), built and rendered (pure + fork)
* ``parallel``    -- building and rendering entries on the second core (fork), with a serial fallback
* ``sources``     -- the one place input files are stat'ed, fingerprinted and read
* ``read``        -- each elo group left alone, extended or rebuilt from its files
* ``cache``       -- the incremental state (manifest, group caches), crash-safe and validated
* ``write``       -- the index, the sidecar, the group caches, then the manifest
"""
