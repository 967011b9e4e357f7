"""Revisions, oldest first (``v0001_…``); a revision is never edited once released."""
