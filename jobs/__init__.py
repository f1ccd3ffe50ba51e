"""The worker side: the procrastinate App and its tasks (thin wrappers around the feature services)."""
