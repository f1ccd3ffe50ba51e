"""Sluice: the HTTP side (Service API, console API, form pages) and the feature services both entry points use."""
