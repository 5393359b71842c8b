"""The snapshot engine: no Textual import, ever (tests/test_import_hygiene.py checks it)."""
