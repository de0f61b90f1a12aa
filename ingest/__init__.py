"""Asynchronous news-feed ingestion service.

Data flows one way: fetch -> parse -> normalize -> deliver -> store. `ingest`
holds everything that is not an arq task; `workers` holds what runs inside an
arq worker and imports `ingest`, never the other way round.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
