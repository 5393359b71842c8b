"""The write side of the engine (DESIGN.md "Layers"): a snapshot run, the web-form pass alone,
restore and let-in, each under the run context; the crawl, resume policy and phase table."""
