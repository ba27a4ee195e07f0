"""Suggestions computed from text, locally and offline: classification, summary, key fields.

Pure computation, no database: `service/suggestions.py` decides what to compute and stores
it; the Celery worker (`tasks.py`) runs it. `providers.py` is the seam where an external
model endpoint could replace the local models.
"""
