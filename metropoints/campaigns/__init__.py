"""Benefit campaigns: editor, lifecycle and review, revisions, the live catalogue, featuring on kiosks."""
