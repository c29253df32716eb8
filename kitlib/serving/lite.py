"""TensorFlow Lite: convert SavedModel signatures and run them with the LiteRT interpreter."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from kitlib.runtime import quiet_native_stderr


def convert(saved_model: Path, signature: str, optimizations: list[Any] | None = None,
            representative_data: Callable[[], Any] | None = None) -> bytes:
    """A TFLite flatbuffer of one SavedModel signature (optionally quantised)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[signature])
    converter.optimizations = optimizations or []
    if representative_data is not None:
        converter.representative_dataset = representative_data
    with quiet_native_stderr():
        return converter.convert()


def runner(model: Path | bytes, signature: str) -> Callable[..., dict[str, Any]]:
    """A callable running one signature of a TFLite model: keyword inputs in, dict of numpy outputs out."""
    from ai_edge_litert.interpreter import Interpreter

    source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    with quiet_native_stderr():  # the XNNPACK delegate announces itself on the C-level stderr
        interpreter = Interpreter(**source)
        run = interpreter.get_signature_runner(signature)

    def call(**inputs: Any) -> dict[str, Any]:
        with quiet_native_stderr():
            return run(**inputs)

    return call
