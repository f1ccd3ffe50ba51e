"""Datasets (knowledge bases) of a workspace: create, list, show, update, delete (Service API, dataset key).

``services.get_dataset`` is the one "dataset of this workspace or 404" lookup the other knowledge packages use.
"""
