"""The core imports without any extra; a missing extra names its pip install line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pagesight
import pagesight.integrations

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    HEAVY = {"torch", "transformers", "sentence_transformers", "langchain_core", "llama_index",
             "chromadb", "pymupdf", "fitz", "pypdfium2", "ollama", "bm25s", "gradio"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HEAVY:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Block())
    """
)


def run_without_extras(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_public_names():
    assert pagesight.integrations.__all__ == [
        "ColEmbedEmbedding",
        "ColEmbedEmbeddings",
        "LateInteractionNodeRetriever",
        "LateInteractionRetriever",
        "MatryoshkaEmbedding",
        "MatryoshkaEmbeddings",
        "PageLoader",
        "PageNodeRetriever",
        "PageReader",
        "PageRetriever",
        "VLEmbedding",
        "VLEmbeddings",
        "VLRerankPostprocessor",
        "VLReranker",
        "build_langchain_chain",
        "build_llamaindex_query_engine",
    ]
    assert set(pagesight.__all__) == {"Hit", "Index", "Page", "PagesightError", "__version__"}
    assert pagesight.Index.__module__ == "pagesight.index"


def test_core_modules_import_with_only_the_core_installed():
    proc = run_without_extras(
        """
        import pagesight, pagesight.integrations, pagesight.documents, pagesight.models, pagesight.errors
        import pagesight.retrieval.store, pagesight.retrieval.search, pagesight.pipelines.ingest
        import pagesight.pipelines.answer, pagesight.profiles, pagesight.cli, pagesight.index
        pagesight.Index.create("somewhere", profile="offline")   # cheap: opens and loads nothing
        from pagesight.models import MatryoshkaEncoder
        MatryoshkaEncoder("all-minilm-l6-v2", dimensions=64)   # constructors are cheap
        pagesight.cli.build_parser()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
        print("HEAVY", heavy)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_missing_extras_name_the_pip_install_line():
    proc = run_without_extras(
        """
        import pagesight.integrations
        try:
            pagesight.integrations.MatryoshkaEmbeddings
        except ImportError as e:
            print("LC", e)
        try:
            pagesight.integrations.MatryoshkaEmbedding
        except ImportError as e:
            print("LI", e)
        try:
            pagesight.integrations.VLReranker
        except ImportError as e:
            print("LC-RERANK", e)
        try:
            pagesight.integrations.VLRerankPostprocessor
        except ImportError as e:
            print("LI-RERANK", e)
        from pagesight.retrieval.store import PageStore
        try:
            PageStore("somewhere").count()
        except ImportError as e:
            print("CH", e)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "LC" in proc.stdout and 'pip install "pagesight[langchain]"' in proc.stdout
    assert 'pip install "pagesight[llamaindex]"' in proc.stdout
    assert 'pip install "pagesight[chroma]"' in proc.stdout
    assert "LC-RERANK VLReranker needs an optional dependency" in proc.stdout
    assert "LI-RERANK VLRerankPostprocessor needs an optional dependency" in proc.stdout


def test_adapters_load_no_model_runtime():
    """Adapters and their constructors stay free of torch, transformers, Chroma and ONNX."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                import pagesight.integrations as integrations
                for name in integrations.__all__:
                    getattr(integrations, name)
                integrations.VLEmbeddings(model="clip-vit-b-32")
                integrations.VLEmbedding("clip-vit-b-32")
                integrations.VLReranker(model="nanoranker")
                integrations.VLRerankPostprocessor(model="nanoranker")
                runtimes = {"torch", "transformers", "sentence_transformers", "chromadb", "nanoranker",
                            "onnxruntime"}
                print("LOADED", sorted({m.split(".")[0] for m in sys.modules} & runtimes))
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout
