"""Benefit campaigns: editor, lifecycle and review, the live catalogue, featuring on kiosks."""
