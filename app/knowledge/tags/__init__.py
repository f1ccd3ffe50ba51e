"""Knowledge tags of a workspace and their bindings to datasets (Service API, dataset key)."""
