"""Public names of pagesight.models and the integration packages."""

from __future__ import annotations

import pagesight.models


def test_models_all() -> None:
    assert sorted(pagesight.models.__all__) == [
        "DenseTextEncoder",
        "EmbedderInfo",
        "MatryoshkaEncoder",
        "ModelSpec",
        "REGISTRY",
        "known_aliases",
        "resolve",
        "truncate_embeddings",
    ]
    for name in pagesight.models.__all__:
        assert getattr(pagesight.models, name) is not None


def test_integration_packages_export_the_adapters() -> None:
    from pagesight.integrations import MatryoshkaEmbedding, MatryoshkaEmbeddings
    from pagesight.integrations.langchain import __all__ as langchain_all
    from pagesight.integrations.llama_index import __all__ as llama_all

    assert langchain_all == [
        "ColEmbedEmbeddings",
        "LateInteractionRetriever",
        "MatryoshkaEmbeddings",
        "PageLoader",
        "PageRetriever",
        "VLEmbeddings",
        "VLReranker",
    ]
    assert llama_all == [
        "ColEmbedEmbedding",
        "LateInteractionNodeRetriever",
        "MatryoshkaEmbedding",
        "PageNodeRetriever",
        "PageReader",
        "VLEmbedding",
        "VLRerankPostprocessor",
    ]
    assert MatryoshkaEmbeddings.__name__ == "MatryoshkaEmbeddings"
    assert MatryoshkaEmbedding.__name__ == "MatryoshkaEmbedding"
