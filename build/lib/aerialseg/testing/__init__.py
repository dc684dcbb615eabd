"""Generated stand-ins used only by tests and benchmarks (never by a stage)."""
