"""Retrieval: the page store on Chroma, BM25 hybrid search."""
