"""The write side of the engine (DESIGN.md "Layers"): crawl scheduling for now."""
