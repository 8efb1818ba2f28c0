"""KPIs and charts for the metro business team (read-only queries over every package)."""
