"""salesmap-tui: a full, trustworthy snapshot of a Salesmap CRM workspace in one SQLite file."""

__version__ = "0.1.0"
