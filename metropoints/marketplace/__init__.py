"""Merchants, their stores and staff; onboarding by the metro business team; the portal's shell."""
