"""Documents of a dataset (Service API, dataset key): create from text or a file, update, list, show, delete,
enable/disable/archive, pause/resume/retry indexing, and the indexing status of a batch."""
