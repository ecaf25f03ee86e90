"""Answers written by a ``transformers`` model: a VLM that reads the page images, or a text LLM.

:class:`TransformersGenerator` loads a Hugging Face Hub id or a local folder. Its ``AutoConfig``
decides the path: a model type that ``AutoModelForImageTextToText`` maps (Qwen2-VL, Qwen2.5-VL,
Qwen3-VL, SmolVLM, Idefics3, LLaVA, Mllama, Gemma 3, ...) loads with ``AutoProcessor`` and gets the
retrieved pages' text and up to ``max_images`` page images through the processor's chat template;
any other causal LM loads with ``AutoTokenizer`` and gets the pages' text (through its chat template
when it has one, else :meth:`Prompt.plain`). A GGUF file (``gguf_file=``) loads as a text LLM.

The prompt is :func:`pagesight.pipelines.prompt.build_prompt`'s, so answers cite pages as
``[<file> p.<N>]`` like every other generator. Decoding is greedy (the same pages and question give
the same answer), bounded by ``max_new_tokens``.

Images are bounded twice: each page image is scaled down to at most ``max_pixels`` pixels before
it reaches the processor, and a processor with its own pixel budget (Qwen2-VL style
``min_pixels``/``max_pixels``, stored as ``size["shortest_edge"/"longest_edge"]``) gets that budget
lowered to ``max_pixels`` too, so its rounding to whole patches never scales a page back up.

Known VLMs (:data:`KNOWN_VLMS`) load at a pinned Hub revision; other ids load at ``revision``
(``None``: the default branch).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pagesight._checks import check_int
from pagesight._deps import SAFE_WEIGHTS, pickle_weights_error, require
from pagesight.errors import (
    ConfigurationError,
    GenerationError,
    MissingDependencyError,
    ModelNotAvailableError,
)
from pagesight.pipelines.prompt import SYSTEM_PROMPT, Prompt, prompt_with_images
from pagesight.types import Hit

__all__ = ["KNOWN_VLMS", "KnownVLM", "TransformersGenerator"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KnownVLM:
    """A VLM pagesight has a pinned revision for.

    Attributes:
        revision: the Hub commit loaded unless ``revision=`` says otherwise.
        license: the weights' license (SPDX id, or the vendor's name for its own license).
        commercial_use: whether the license allows commercial use (a warning is logged when not).
        gated: the Hub asks you to accept the license before downloading.
        note: what else the license says that a user should know.
    """

    revision: str | None
    license: str
    commercial_use: bool
    gated: bool = False
    note: str = ""


KNOWN_VLMS: Mapping[str, KnownVLM] = MappingProxyType(
    {
        "Qwen/Qwen2.5-VL-3B-Instruct": KnownVLM(
            "66285546d2b821cf421d4f5eb2576359d3770cd3",
            "qwen-research",
            commercial_use=False,
            note="Qwen Research License: research and non-commercial use only",
        ),
        "Qwen/Qwen2.5-VL-7B-Instruct": KnownVLM(
            "cc594898137f460bfe9f0759e9844b3ce807cfb5", "apache-2.0", True
        ),
        "Qwen/Qwen3-VL-2B-Instruct": KnownVLM("89644892e4d85e24eaac8bacfd4f463576704203", "apache-2.0", True),
        "HuggingFaceTB/SmolVLM-256M-Instruct": KnownVLM(
            "7e3e67edbbed1bf9888184d9df282b700a323964", "apache-2.0", True
        ),
        "HuggingFaceTB/SmolVLM2-2.2B-Instruct": KnownVLM(
            "482adb537c021c86670beed01cd58990d01e72e4", "apache-2.0", True
        ),
        "meta-llama/Llama-3.2-11B-Vision-Instruct": KnownVLM(
            "9eb2daaa8597bf192a8b0e73f848f3a102794df5",
            "llama3.2",
            commercial_use=True,
            gated=True,
            note="Llama 3.2 Community License: commercial use allowed below 700M monthly users; "
            "no rights to the multimodal models for individuals or companies domiciled in the EU",
        ),
        "google/gemma-3-4b-it": KnownVLM(
            "093f9f388b31de276ce2de164bdc2081324b9767",
            "gemma",
            commercial_use=True,
            gated=True,
            note="Gemma Terms of Use and Prohibited Use Policy",
        ),
    }
)
"""Hub id -> pinned revision and license of the VLMs pagesight knows (ids match case-insensitively)."""

DEFAULT_MAX_PIXELS = 768 * 768
"""Default pixel budget per page image (about 0.6 megapixels; ~750 visual tokens on Qwen2.5-VL)."""

PLAIN_STOPS = ("\nQuestion:", "\nPage [")
"""Where an answer to a plain prompt (:meth:`Prompt.plain`, models without a chat template) ends:
a base model that answered goes on with another question or page block."""

_GENERATIVE_SUFFIXES = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "ForImageTextToText")


def known_vlm(model: str) -> tuple[str, KnownVLM] | None:
    """The :data:`KNOWN_VLMS` entry (with its id as spelled there) for ``model``, matched ignoring case."""
    key = model.strip().casefold()
    for hf_id, entry in KNOWN_VLMS.items():
        if hf_id.casefold() == key:
            return hf_id, entry
    return None


def _model_kind(config: Any) -> str:
    """``"vision"`` (image-text-to-text), ``"text"`` (causal LM); :class:`ConfigurationError` otherwise."""
    from transformers.models.auto import modeling_auto

    vision_types = modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    text_types = modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    masked_types = modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES
    model_type = str(getattr(config, "model_type", "") or "")
    architectures = [str(a) for a in (getattr(config, "architectures", None) or [])]
    auto_map = getattr(config, "auto_map", None) or {}
    generative = set(vision_types.values()) | set(text_types.values())
    what = f"model type {model_type!r}" + (f", architectures {architectures}" if architectures else "")
    no_head = ConfigurationError(
        f"this model cannot write answers ({what}): it has no text-generation head (an embedding "
        "or encoder model?); use a chat or vision-language model such as Qwen/Qwen2.5-VL-3B-Instruct"
    )
    if architectures and not any(a in generative or a.endswith(_GENERATIVE_SUFFIXES) for a in architectures):
        raise no_head
    if model_type in vision_types or "AutoModelForImageTextToText" in auto_map:
        return "vision"
    if model_type in text_types or "AutoModelForCausalLM" in auto_map:
        if not architectures and model_type in masked_types and not getattr(config, "is_decoder", False):
            raise no_head
        return "text"
    raise no_head


def _dtype_key(version: str) -> str:
    """The ``from_pretrained`` keyword for the weights' dtype: ``dtype`` from transformers 4.56 on."""
    from pagesight.models._remote import _major_minor

    return "dtype" if _major_minor(version) >= (4, 56) else "torch_dtype"


def _bound_processor_pixels(processor: Any, max_pixels: int) -> None:
    """Lower a Qwen2-VL style image processor's own pixel budget to ``max_pixels``.

    Those processors (``temporal_patch_size`` and ``merge_size``) resize every image to whole
    patches between ``size["shortest_edge"]`` and ``size["longest_edge"]`` pixels (older versions:
    ``min_pixels``/``max_pixels`` attributes). Other processors' ``size`` is an edge length in
    pixels and is left alone: the page images they get are already bounded.
    """
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return
    if not (hasattr(image_processor, "temporal_patch_size") and hasattr(image_processor, "merge_size")):
        return
    size = getattr(image_processor, "size", None)
    longest = size.get("longest_edge") if isinstance(size, Mapping) else getattr(size, "longest_edge", None)
    if longest is not None:
        budget = min(int(longest), max_pixels)
        shortest: Any = (
            size.get("shortest_edge") if isinstance(size, Mapping) else getattr(size, "shortest_edge", None)
        )
        new = {"longest_edge": budget, "shortest_edge": min(int(shortest or budget), budget)}
        if isinstance(size, dict):
            size.update(new)
        elif isinstance(size, Mapping):
            image_processor.size = {**size, **new}
        else:
            for key, value in new.items():
                setattr(size, key, value)
    for attr in ("max_pixels", "min_pixels"):
        current = getattr(image_processor, attr, None)
        if isinstance(current, int):
            setattr(image_processor, attr, min(current, max_pixels))


class TransformersGenerator:
    """Writes cited answers with a ``transformers`` VLM (page images + text) or text LLM (text).

    Install: ``pip install "pagesight[hf]"`` (torch, transformers, accelerate, gguf); Qwen-VL
    processors also need ``torchvision``.

    Use::

        from pagesight.models.generate import TransformersGenerator
        from pagesight.pipelines.answer import answer

        generator = TransformersGenerator("Qwen/Qwen2.5-VL-3B-Instruct").load()  # pinned revision
        generator.vision                                  # True: the top pages' images are shown
        result = answer("How do I cite R?", searcher, generator, on_token=print)
        result.text        # "Use citation() ... [R-FAQ.pdf p.3]"
        result.citations   # [Citation(source=".../R-FAQ.pdf", page=3, image=".../ab12.png", score=0.71)]

        # a text LLM from a GGUF file (pages' text only)
        TransformersGenerator("/models", gguf_file="gemma-3-270m-q4_k_m.gguf")

    Args:
        model: Hub id or local folder (or the path of a ``.gguf`` file).
        revision: Hub revision; ``None``: the pinned one for :data:`KNOWN_VLMS`, else the default
            branch. Ignored for a local folder.
        gguf_file: a GGUF file name inside ``model`` (loaded as a text LLM, dequantized).
        device: torch device (``None``: CUDA when available, else CPU).
        dtype: weights' dtype (``None``: bfloat16 on CUDA, float32 on CPU).
        trust_remote_code: allow the model's own code from its repository.
        max_images: page images shown to a VLM at most (the best pages that have one).
        max_pixels: each page image is scaled down (aspect kept) to at most this many pixels.
        max_new_tokens: the answer's length limit in tokens.
        max_chars_per_page: page text in the prompt is cut to this many characters.
        system: the system message.
        attn_implementation: ``None``: ``flash_attention_2`` when flash-attn imports on CUDA, else
            ``sdpa`` (the model's default if it refuses that); a name given here is used as is.
    """

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        gguf_file: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        max_images: int = 3,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_new_tokens: int = 512,
        max_chars_per_page: int = 3000,
        system: str = SYSTEM_PROMPT,
        attn_implementation: str | None = None,
    ) -> None:
        from pagesight.models._colembed_common import check_dtype

        if not model or not str(model).strip():
            raise ConfigurationError("`model` must be a Hugging Face id or a local folder")
        check_int("max_images", max_images, least=0)
        check_int("max_pixels", max_pixels, least=1)
        check_int("max_new_tokens", max_new_tokens, least=1)
        check_int("max_chars_per_page", max_chars_per_page, least=1)
        try:
            check_dtype(dtype)
        except ValueError as e:
            raise ConfigurationError(str(e)) from e
        model = str(model).strip()
        if gguf_file is None and model.lower().endswith(".gguf") and Path(model).is_file():
            model, gguf_file = str(Path(model).parent), Path(model).name
        self.model = model
        known = None if self._local else known_vlm(model)
        if known is not None:
            self.model = known[0]  # the id as the Hub spells it (the local cache is case-sensitive)
        self.gguf_file = gguf_file
        self.device = device
        self.dtype = dtype
        self.trust_remote_code = trust_remote_code
        self.max_images = max_images
        self.max_pixels = max_pixels
        self.max_new_tokens = max_new_tokens
        self.max_chars_per_page = max_chars_per_page
        self.system = system
        self.attn_implementation = attn_implementation
        self.known: KnownVLM | None = known[1] if known else None
        self.revision = revision if revision is not None or self.known is None else self.known.revision
        self._model: Any = None
        self._processor: Any = None
        self._vision = False
        self._device = "cpu"
        self._lock = threading.Lock()
        if known is not None and not known[1].commercial_use:
            from pagesight.models._licenses import warn_non_commercial
            from pagesight.models.registry import ModelSpec

            hf_id, entry = known
            warn_non_commercial(ModelSpec(alias=hf_id, kind="generator", hf_id=hf_id, license=entry.license))

    def __repr__(self) -> str:
        gguf = f", gguf_file={self.gguf_file!r}" if self.gguf_file else ""
        return f"TransformersGenerator(model={self.model!r}, revision={self.revision!r}{gguf})"

    @property
    def _local(self) -> bool:
        return Path(self.model).expanduser().is_dir()

    # -- loading ----------------------------------------------------------------------------------

    def load(self) -> TransformersGenerator:
        """Load the model and its processor or tokenizer now (thread-safe; later calls return at once).

        Raises:
            MissingDependencyError: torch or transformers (or a package the processor needs, such
                as torchvision) is not installed.
            ModelNotAvailableError: the model could not be loaded (not downloaded, no Hub access,
                a folder without a model); the message says what to do.
            ConfigurationError: the model cannot generate text (an embedding or encoder model).
        """
        if self._model is not None:
            return self
        with self._lock:
            if self._model is None:
                self._load()
        return self

    def _load(self) -> None:
        from pagesight.models._colembed_common import resolve_device, torch_dtype
        from pagesight.models._remote import _preferred_attention

        require("torch", "hf")
        transformers = require("transformers", "hf")
        local = self._local
        source = str(Path(self.model).expanduser()) if local else self.model
        revision = None if local else self.revision
        if not local and self.known is None:
            logger.info(
                "%s is not among pagesight's known VLMs; loading revision %s without a pinned commit",
                source,
                revision or "of the default branch",
            )
        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if revision is not None:
            kwargs["revision"] = revision
        if self.gguf_file is not None:
            kwargs["gguf_file"] = self.gguf_file
        elif not local:
            from pagesight.models._hub import check_hub

            check_hub(source, revision)  # not cached and no Hub: fail now, not after minutes of retries
        where = resolve_device(self.device)
        weights = torch_dtype(self.dtype, where)
        attn = self.attn_implementation or _preferred_attention(where)
        try:
            if self.gguf_file is not None:
                kind = "text"  # transformers reads GGUF checkpoints of text LLMs only; skip the config parse
            else:
                kind = _model_kind(transformers.AutoConfig.from_pretrained(source, **kwargs))
            at = f"@{revision}" if revision else ""
            logger.info("loading %s%s (%s) on %s (%s, %s)", source, at, kind, where, weights, attn)
            if kind == "vision":
                processor = transformers.AutoProcessor.from_pretrained(source, **kwargs)
                _bound_processor_pixels(processor, self.max_pixels)
                auto = transformers.AutoModelForImageTextToText
            else:
                processor = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
                auto = transformers.AutoModelForCausalLM
            model_kwargs = {**kwargs, **SAFE_WEIGHTS, _dtype_key(transformers.__version__): weights}
            try:
                model = auto.from_pretrained(source, attn_implementation=attn, **model_kwargs)
            except (ValueError, ImportError) as e:
                if self.attn_implementation is not None or "attn" not in str(e).lower():
                    raise
                logger.info("%s refuses attn_implementation=%r (%s); using its default", source, attn, e)
                model = auto.from_pretrained(source, **model_kwargs)
            model = model.to(where).eval()
        except (ConfigurationError, ModelNotAvailableError, MissingDependencyError):
            raise
        except Exception as e:
            raise self._load_error(e, source, revision) from e
        self._processor = processor
        self._vision = kind == "vision"
        self._device = where
        self._model = model

    def _load_error(self, e: Exception, source: str, revision: str | None) -> Exception:
        """The error that says what to do about a failure to load ``source``."""
        text = f"{type(e).__name__}: {' '.join(str(e).split())[:400]}"
        if self.gguf_file is None and (pickled := pickle_weights_error(e, source)) is not None:
            return pickled
        if isinstance(e, ImportError) and "torchvision" in str(e).lower():
            return MissingDependencyError(
                f"{source}'s processor needs torchvision; install the build that matches your torch: "
                f"pip install torchvision ({text})"
            )
        if isinstance(e, ModuleNotFoundError) and e.name and not e.name.startswith("transformers"):
            return MissingDependencyError(
                f"{source} needs the package {e.name!r}: pip install {e.name.split('.')[0]} ({text})"
            )
        if "trust_remote_code" in str(e) and not self.trust_remote_code:
            return ModelNotAvailableError(
                f"{source} runs code from its model repository; pass trust_remote_code=True "
                f"(`--trust-remote-code`) if you trust it ({text})"
            )
        gguf = f" (GGUF file {self.gguf_file})" if self.gguf_file else ""
        if Path(source).is_dir():
            return ModelNotAvailableError(
                f"could not load a model from the folder {source}{gguf}: {text}. The folder must hold a "
                "transformers model (config.json, weights, tokenizer or processor files), e.g. one "
                "downloaded with `huggingface-cli download <id> --local-dir <folder>`"
            )
        if source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") > 1:
            return ModelNotAvailableError(
                f"there is no model folder {source}{gguf}: pass an existing folder, or a Hugging Face "
                f"id such as Qwen/Qwen2.5-VL-3B-Instruct ({text})"
            )
        rev = revision or "main"
        gated = " accept its license on its Hub page and log in (hf auth login), then" if self._gated else ""
        return ModelNotAvailableError(
            f"could not load {source} at revision {rev}{gguf} ({text}). To use it,{gated} download it "
            f"with `huggingface-cli download {source} --revision {rev}` (with network access and "
            "HF_HUB_OFFLINE unset), or pass the folder of a downloaded copy as the model; "
            "for a model that runs its own code, pass trust_remote_code=True"
        )

    @property
    def _gated(self) -> bool:
        return bool(self.known and self.known.gated)

    @property
    def vision(self) -> bool:
        """Whether the model takes page images (loads the model on first use)."""
        self.load()
        return self._vision

    @property
    def hf_model(self) -> Any:
        """The loaded ``transformers`` model (loads it on first use)."""
        self.load()
        return self._model

    @property
    def hf_processor(self) -> Any:
        """The loaded processor (VLM) or tokenizer (text LLM) (loads it on first use)."""
        self.load()
        return self._processor

    # -- the prompt -------------------------------------------------------------------------------

    def prompt(self, question: str, pages: Sequence[Hit]) -> tuple[Prompt, list[Any]]:
        """The prompt for ``question`` and the bounded PIL images it attaches, in its order."""
        return prompt_with_images(
            question,
            pages,
            images=self.vision,
            max_images=self.max_images,
            max_pixels=self.max_pixels,
            max_chars_per_page=self.max_chars_per_page,
            system=self.system,
        )

    def _apply_template(self, template_owner: Any, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        """``apply_chat_template``; a template that refuses a system turn gets it folded into the user's."""
        from jinja2.exceptions import TemplateError

        try:
            return template_owner.apply_chat_template(messages, add_generation_prompt=True, **kwargs)
        except TemplateError as e:
            if messages[0]["role"] != "system":
                raise
            logger.info("the chat template refuses a system turn (%s); folding it into the user turn", e)
            system, user = messages[0]["content"], messages[1]["content"]
            if isinstance(user, str):
                folded: Any = f"{system}\n\n{user}"
            else:
                head = system[0]["text"]
                folded = [
                    {**item, "text": f"{head}\n\n{item['text']}"} if item.get("type") == "text" else item
                    for item in user
                ]
            return template_owner.apply_chat_template(
                [{"role": "user", "content": folded}], add_generation_prompt=True, **kwargs
            )

    def build_inputs(self, question: str, pages: Sequence[Hit]) -> Any:
        """The model inputs (``input_ids``, ``attention_mask``, and for a VLM ``pixel_values`` and the
        like) that :meth:`generate` feeds the model, on its device."""
        prompt, images = self.prompt(question, pages)
        processor = self._processor
        if self._vision:
            content: list[dict[str, Any]] = [{"type": "image", "image": img} for img in images]
            content.append({"type": "text", "text": prompt.user})
            messages = [
                {"role": "system", "content": [{"type": "text", "text": prompt.system}]},
                {"role": "user", "content": content},
            ]
            if not getattr(processor, "chat_template", None):
                raise ConfigurationError(
                    f"{self.model}'s processor has no chat template; use an instruction-tuned "
                    "checkpoint (…-Instruct, …-it) of this VLM"
                )
            inputs = self._apply_template(
                processor, messages, tokenize=True, return_dict=True, return_tensors="pt"
            )
        elif getattr(processor, "chat_template", None):
            messages = [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ]
            inputs = self._apply_template(
                processor, messages, tokenize=True, return_dict=True, return_tensors="pt"
            )
        else:
            inputs = processor(prompt.plain(), return_tensors="pt")
        return self._to_device(inputs)

    def _to_device(self, inputs: Any) -> Any:
        """``inputs`` on the model's device, floating tensors (pixel values) in the model's dtype."""
        dtype = getattr(self._model, "dtype", None)
        out = {}
        for key, value in dict(inputs).items():
            if hasattr(value, "to"):
                value = value.to(self._device)
                if dtype is not None and value.is_floating_point():
                    value = value.to(dtype)
            out[key] = value
        return out

    # -- Generator protocol -----------------------------------------------------------------------

    def _generate_kwargs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {**inputs, "max_new_tokens": self.max_new_tokens, "do_sample": False}
        tokenizer = self._tokenizer
        config = getattr(self._model, "generation_config", None)
        if config is not None and config.pad_token_id is None:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            if pad is not None:
                kwargs["pad_token_id"] = pad
        if config is not None:  # greedy: drop sampling settings a checkpoint ships, which greedy ignores
            for name in ("temperature", "top_p", "top_k"):
                if getattr(config, name, None) is not None:
                    kwargs[name] = None
        return kwargs

    @property
    def _tokenizer(self) -> Any:
        return getattr(self._processor, "tokenizer", None) or self._processor

    @property
    def _stops(self) -> tuple[str, ...]:
        """Where a plain (template-less) prompt's answer ends: a base model goes on writing pages."""
        if self._vision or getattr(self._processor, "chat_template", None):
            return ()
        return PLAIN_STOPS

    def _decode_new(self, out: Any, prompt_length: int) -> str:
        """The answer: the new tokens decoded (special tokens skipped), cut at a stop, stripped."""
        text = str(self._tokenizer.decode(out[0, prompt_length:], skip_special_tokens=True))
        return _cut(text, self._stops).strip()

    def _run(self, inputs: dict[str, Any], **extra: Any) -> Any:
        import torch

        kwargs = self._generate_kwargs(inputs)
        if self._stops:
            from transformers import StoppingCriteriaList

            stop = _StopAtStrings(self._tokenizer, inputs["input_ids"].shape[-1], self._stops)
            kwargs["stopping_criteria"] = StoppingCriteriaList([stop])
        try:
            with torch.inference_mode():
                return self._model.generate(**kwargs, **extra)
        except torch.OutOfMemoryError as e:
            raise GenerationError(
                f"{self.model} ran out of memory writing the answer on {self._device}: lower max_images "
                f"(now {self.max_images}), max_pixels (now {self.max_pixels}) or max_new_tokens "
                f"(now {self.max_new_tokens}), or retrieve fewer pages (-k)"
            ) from e
        except RuntimeError as e:
            raise GenerationError(f"{self.model} failed while writing the answer: {e}") from e

    def generate(self, question: str, pages: Sequence[Hit]) -> str:
        """The whole answer (greedy, at most ``max_new_tokens`` tokens), citing pages as ``[<file> p.<N>]``.

        Loads the model on first use (see :meth:`load` for the errors).
        """
        inputs = self.build_inputs(question, pages)
        return self._decode_new(self._run(inputs), inputs["input_ids"].shape[-1])

    def stream(self, question: str, pages: Sequence[Hit]) -> Iterator[str]:
        """The answer piece by piece as the model writes it; the pieces join to :meth:`generate`'s text.

        Generation runs in a thread feeding a ``TextIteratorStreamer``; an error there is raised
        here. Text that may be the start of a stop (plain prompts) or trailing whitespace is held
        back until the next piece shows what it is.
        """
        from transformers import TextIteratorStreamer

        inputs = self.build_inputs(question, pages)
        prompt_length = inputs["input_ids"].shape[-1]
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: list[Any] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                result.append(self._run(inputs, streamer=streamer))
            except BaseException as e:  # handed to the reading side
                failure.append(e)
                streamer.end()

        worker = threading.Thread(target=run, name="pagesight-hf-generate", daemon=True)
        worker.start()
        stops = self._stops
        written = ""
        emitted = ""
        for piece in streamer:
            written += piece
            visible = _cut(written, stops)
            if len(visible) == len(written):
                visible = written[: len(written) - _stop_prefix_length(written, stops)]
            now = visible.strip()
            if len(now) > len(emitted) and now.startswith(emitted):
                yield now[len(emitted) :]
                emitted = now
        worker.join()
        if failure:
            raise failure[0]
        final = self._decode_new(result[0], prompt_length)  # what generate() returns
        if final.startswith(emitted) and len(final) > len(emitted):
            yield final[len(emitted) :]
        elif not final.startswith(emitted):
            logger.debug("streamed text %r is not a prefix of the decoded answer %r", emitted, final)


def _cut(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the first of ``stops`` in it."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(found)] if found else text


def _stop_prefix_length(text: str, stops: Sequence[str]) -> int:
    """The length of the longest end of ``text`` that starts one of ``stops``."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if stop.startswith(text[-n:]):
                best = n
                break
    return best


class _StopAtStrings:
    """A stopping criterion: stop once the new text contains one of ``stops``."""

    def __init__(self, tokenizer: Any, prompt_length: int, stops: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stops = tuple(stops)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = [
            any(
                s in self.tokenizer.decode(row[self.prompt_length :], skip_special_tokens=True)
                for s in self.stops
            )
            for row in input_ids
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
