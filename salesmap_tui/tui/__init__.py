"""The Textual UI: a thin reader of the engine's events (never imported by the engine)."""
