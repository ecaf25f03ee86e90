"""Build the tiny models the NV-Embed-v2 and E5-V backend tests load (random weights, local tokenizers).

- :func:`build_tiny_nvembed`: a sentence-transformers folder laid out as NV-Embed-v2's is (legacy
  ``modules.json`` with a ``Transformer`` over remote code + ``Pooling`` mean with
  ``include_prompt: false``), whose model is the stand-in in ``modeling_standin_nvembed.py`` and whose
  word-level tokenizer has ``<s>`` (prepended, as Mistral's does), ``</s>`` (eos) and ``<pad>``.
- :func:`build_tiny_e5v`: a ``LlavaNextForConditionalGeneration`` (tiny CLIP vision tower + tiny Llama)
  with a word-level tokenizer holding ``<image>`` and the Llama-3 header tokens, and a
  ``LlavaNextProcessor`` with the slow (PIL) image processor.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
NVEMBED_MODELING = HERE / "modeling_standin_nvembed.py"

# Words of NV-Embed's default instruction, the E5-V prompts and the test sentences; anything else is <unk>.
WORDS = (
    *("Instruct", ":", "Given", "a", "question", ",", "retrieve", "passages", "that", "answer"),
    *("the", "Query", "Summary", "above", "sentence", "in", "one", "word", "image"),
    *("cats", "dogs", "sit", "on", "mats", "red", "blue", "pages", "of", "paper"),
    *("how", "do", "bake", "bread"),
)

NVEMBED_SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")
E5V_SPECIALS = (
    "<unk>",
    "<|begin_of_text|>",
    "<|eot_id|>",
    "<pad>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<image>",
    "user",
    "assistant",
)


def _word_tokenizer(specials: tuple[str, ...], *, bos: str | None, eos: str, pad: str, extra: dict) -> object:
    """A fast word-level tokenizer: specials first, then :data:`WORDS`; ``bos`` prepended when given."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(specials)}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        **extra,
    )


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_tiny_nvembed(folder: Path, *, seed: int = 0, remote_code: bool = True) -> Path:
    """Save a tiny NV-Embed-v2 look-alike as a sentence-transformers folder in ``folder``.

    ``remote_code=True``: the model is the stand-in remote code (``auto_map`` -> the copied modeling
    file), returning ``{"sentence_embeddings": per-token vectors}`` as NV-Embed-v2 does.
    ``remote_code=False``: a plain ``LlamaModel`` (no remote code), for the loading path alone.
    """
    import torch
    from transformers import LlamaConfig, LlamaModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _word_tokenizer(NVEMBED_SPECIALS, bos="<s>", eos="</s>", pad="<pad>", extra={})
    if remote_code:
        module = _module(NVEMBED_MODELING, "standin_nvembed_build")
        config = module.StandinNVEmbedConfig(
            auto_map={
                "AutoConfig": "modeling_standin_nvembed.StandinNVEmbedConfig",
                "AutoModel": "modeling_standin_nvembed.StandinNVEmbedModel",
            },
            architectures=["StandinNVEmbedModel"],
        )
        model = module.StandinNVEmbedModel(config)
        shutil.copy(NVEMBED_MODELING, folder / NVEMBED_MODELING.name)
        hidden = config.hidden_size
    else:
        hidden = 16
        model = LlamaModel(
            LlamaConfig(
                vocab_size=64,
                hidden_size=hidden,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                num_key_value_heads=2,
                max_position_embeddings=256,
            )
        )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)  # type: ignore[attr-defined]
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    st_config = {"max_seq_length": 4096, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(st_config))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    return folder


E5V_IMAGE_SIZE = 32
E5V_PATCH = 8
E5V_PINPOINTS = [[32, 32], [32, 64], [64, 32]]


def build_tiny_e5v(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random LLaVA-NeXT (CLIP vision tower + Llama) and its processor in ``folder``.

    The processor's image processor is the PIL one (no torchvision here); images are 32 px tiles
    with an any-resolution grid of 32x32, 32x64 and 64x32, as E5-V's LLaVA-NeXT uses 336 px tiles.
    """
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextProcessor,
    )
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _word_tokenizer(
        E5V_SPECIALS,
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<pad>",
        extra={"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<image>"]},
    )
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")  # type: ignore[attr-defined]
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=E5V_IMAGE_SIZE,
        patch_size=E5V_PATCH,
        projection_dim=16,
    )
    text = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
    )
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        image_grid_pinpoints=E5V_PINPOINTS,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    LlavaNextForConditionalGeneration(config).eval().save_pretrained(folder)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": E5V_IMAGE_SIZE},
        crop_size={"height": E5V_IMAGE_SIZE, "width": E5V_IMAGE_SIZE},
        image_grid_pinpoints=E5V_PINPOINTS,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=E5V_PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    processor.save_pretrained(folder)
    return folder
