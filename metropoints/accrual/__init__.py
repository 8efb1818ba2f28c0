"""Accrual: the network, trip ingestion from partner feeds, points and carbon rules, and the points ledger."""
