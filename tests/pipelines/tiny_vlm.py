"""Tiny random-weight VLMs (and an encoder-only model) saved to folders, built offline for tests.

- :func:`build_tiny_qwen2_vl`: a ``Qwen2VLForConditionalGeneration`` (hidden 32, one text layer,
  vision depth 1) with a byte-level BPE tokenizer trained here on a few sentences (so any text
  round-trips through encode/decode), the special tokens Qwen2-VL's processor needs, and a
  ``Qwen2VLProcessor`` (PIL image processor) carrying a Qwen-style chat template.

  Qwen2-VL's processor also holds a video processor, and transformers' video processors need
  torchvision. Where torchvision is not installed (the CPU CI), the folder's processor is
  :data:`SHIM_SOURCE`'s ``ImageOnlyQwen2VLProcessor``: Qwen2VLProcessor with the video processor
  left out (nothing else changed), shipped as the folder's processor code (``auto_map``), so
  loading it needs ``trust_remote_code=True``; :func:`build_tiny_qwen2_vl` returns whether it did.
- :func:`build_tiny_llava`: a ``LlavaForConditionalGeneration`` (tiny CLIP vision tower + tiny
  Llama) with a ``LlavaProcessor`` (CLIP PIL image processor; no video processor, so no
  torchvision needed) whose Gemma-style chat template refuses a system turn, as some Gemma and
  LLaVA templates do.
- :func:`build_tiny_bert`: a ``BertModel`` (an embedding model: no generation head).

Everything is saved with ``save_pretrained`` so the generator goes through the real
``AutoConfig`` / ``AutoProcessor`` / ``AutoModelForImageTextToText`` path.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

# The special tokens of Qwen2-VL's tokenizer that its processor and chat template use.
QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2-VL's chat template, in short: a default system turn when none is given, one
# <|vision_start|><|image_pad|><|vision_end|> group per image item, text items as is.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'video' or 'video' in item %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in item %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# What the BPE merges are learnt from; the byte-level alphabet covers every other character.
CORPUS = (
    "You answer questions about documents using only the pages you are given.",
    "Each page starts with its label in square brackets, for example [report.pdf p.3].",
    "Page [garden.pdf p.1]: Tomatoes need full sun and regular watering.",
    "The attached images show these pages: image 1 is [network.pdf p.2].",
    "Question: which port does SSH use? Answer: port 22 [network.pdf p.2].",
)

SHIM_MODULE = "processing_image_only_qwen2_vl"
SHIM_SOURCE = '''"""Qwen2-VL's processor without its video processor (which needs torchvision)."""

from transformers import Qwen2VLProcessor


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)
'''

PATCH_SIZE = 14
MERGE_SIZE = 2
MIN_PIXELS = 28 * 28


def _bpe_tokenizer(
    specials: tuple[str, ...], *, eos: str = "<|im_end|>", pad: str = "<|endoftext|>", vocab_size: int = 400
) -> Any:
    """A fast byte-level BPE tokenizer trained on :data:`CORPUS`, with ``specials`` as special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=[t for t in specials if t != pad],
    )


def torchvision_available() -> bool:
    """Whether torchvision imports (transformers' video processors need it)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or a build that does not match torch
        return False
    return True


def build_tiny_qwen2_vl(folder: Path, *, seed: int = 0, max_pixels: int = 512 * 512) -> bool:
    """Save a tiny random Qwen2-VL, its tokenizer and its processor (with chat template) in ``folder``.

    Args:
        folder: where to save (created).
        seed: torch seed for the random weights.
        max_pixels: the image processor's own pixel budget (``size["longest_edge"]``), as a real
            checkpoint ships one; the generator lowers it to its ``max_pixels``.

    Returns:
        Whether the processor is the image-only shim (then loading needs ``trust_remote_code=True``).
    """
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _bpe_tokenizer(QWEN_SPECIALS)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": MERGE_SIZE,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(folder)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=MIN_PIXELS,
        max_pixels=max_pixels,
        patch_size=PATCH_SIZE,
        merge_size=MERGE_SIZE,
        temporal_patch_size=2,
    )
    shim = not torchvision_available()
    if not shim:
        from transformers import Qwen2VLVideoProcessor

        Qwen2VLProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(),
            chat_template=QWEN_CHAT_TEMPLATE,
        ).save_pretrained(folder)
        return False
    with tempfile.TemporaryDirectory() as code:  # save_pretrained copies the class's source file
        source = Path(code) / f"{SHIM_MODULE}.py"
        source.write_text(SHIM_SOURCE, encoding="utf-8")
        shim_class = _module(source, SHIM_MODULE).ImageOnlyQwen2VLProcessor
        shim_class.register_for_auto_class()
        shim_class(
            image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN_CHAT_TEMPLATE
        ).save_pretrained(folder)
    return True


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # save_pretrained finds the class's source file through it
    spec.loader.exec_module(module)
    return module


LLAVA_SPECIALS = ("<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<image>")

# Gemma-style turns; a system turn raises, as Gemma 2 and several LLaVA templates do.
LLAVA_CHAT_TEMPLATE = (
    "<bos>{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
LLAVA_IMAGE_SIZE = 32
LLAVA_PATCH = 8


def build_tiny_llava(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random LLaVA (CLIP vision + Llama), tokenizer and processor in ``folder``.

    Every image becomes one 32 x 32 crop: (32 / 8)^2 = 16 ``<image>`` tokens.
    """
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _bpe_tokenizer(LLAVA_SPECIALS, eos="<end_of_turn>", pad="<pad>")
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=LLAVA_IMAGE_SIZE,
        patch_size=LLAVA_PATCH,
        projection_dim=16,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.convert_tokens_to_ids("<bos>"),
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",  # CLIP's CLS feature dropped
        vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": LLAVA_IMAGE_SIZE},
        crop_size={"height": LLAVA_IMAGE_SIZE, "width": LLAVA_IMAGE_SIZE},
    )
    LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=LLAVA_PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS position, dropped again by "default"
        chat_template=LLAVA_CHAT_TEMPLATE,
    ).save_pretrained(folder)
    return folder


def build_tiny_bert(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random ``BertModel`` (an encoder: no generation head) and a tokenizer in ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _bpe_tokenizer(("[PAD]", "[CLS]", "[SEP]"), eos="[SEP]", pad="[PAD]")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
