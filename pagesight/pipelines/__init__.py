"""Pipelines: ingest (sources -> pages -> embed -> store) and answer."""
