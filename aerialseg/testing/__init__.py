"""Generated stand-ins for tests and benchmarks; a stage uses one only for ``data.source: synthetic``
with ``data.layout: vaihingen`` (vaihingen_zip), so that a synthetic run reads real archives."""
