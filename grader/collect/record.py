"""The format of a collection: what a hidden test cell hands from the kernel to the TA's judge.

One safetensors file: the tensors a collector returned, plus one uint8 tensor holding a small JSON
document that describes everything else (plain numbers, strings, lists, tuples, dicts) and points
to the tensors by name. safetensors runs no code, compresses nothing and checks every tensor's
declared size against the bytes present, and the JSON document is read under caps on its size,
depth, string length and number of values: a collection can never expand beyond its bytes.
The kernel encodes; the TA's process decodes whatever bytes the kernel left, so `decode` trusts nothing.
"""
from __future__ import annotations

import json
import numbers
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

DOCUMENT = "__document__"          # the name of the tensor that holds the JSON document
MAX_DOCUMENT_BYTES = 4 * 2**20     # the JSON document
MAX_DEPTH = 12                     # nesting of lists, tuples and dicts
MAX_STRING = 20_000                # characters of one string
MAX_VALUES = 200_000               # values of every kind in the document
MAX_TENSORS = 10_000
DTYPES = {torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16,
          torch.int32, torch.int64, torch.bool}


class RecordError(ValueError):
    """The bytes are not a collection within the caps; the message says which rule they broke."""


def encode(data: Any) -> bytes:
    """The bytes of a collection (tensors are stored dense, detached, contiguous, on the CPU)."""
    tensors: dict[str, torch.Tensor] = {}
    document = json.dumps(_plain(data, tensors)).encode()
    tensors[DOCUMENT] = torch.frombuffer(bytearray(document), dtype=torch.uint8)
    return save_tensors(tensors)


def _plain(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """`value` as tagged JSON values, its tensors moved to `tensors`; other objects become their type name."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensor = value.detach()
        tensor = tensor.to_dense() if tensor.layout != torch.strided else tensor
        tensors[name] = tensor.as_subclass(torch.Tensor).cpu().contiguous().clone()
        return {"tensor": name}
    if isinstance(value, (list, tuple)):
        return {"tuple" if isinstance(value, tuple) else "list": [_plain(item, tensors) for item in value]}
    if isinstance(value, dict):
        return {"dict": [[_plain(key, tensors), _plain(item, tensors)] for key, item in value.items()]}
    return type(value).__name__


def decode(raw: bytes) -> Any:
    """The collection stored in `raw`; RecordError when it is not one or breaks a cap."""
    try:
        tensors = load_tensors(bytes(raw))
    except Exception as error:  # safetensors raises its own error types for every malformed input
        raise RecordError(f"not a safetensors collection ({type(error).__name__}: {str(error)[:200]})") from None
    document = tensors.pop(DOCUMENT, None)
    if document is None or document.dtype != torch.uint8 or document.dim() != 1:
        raise RecordError("the collection has no document describing its values")
    if document.numel() > MAX_DOCUMENT_BYTES:
        raise RecordError(f"its document is {document.numel()} bytes, more than {MAX_DOCUMENT_BYTES}")
    if len(tensors) > MAX_TENSORS:
        raise RecordError(f"it holds {len(tensors)} tensors, more than {MAX_TENSORS}")
    for name, tensor in tensors.items():
        if tensor.dtype not in DTYPES:
            raise RecordError(f"tensor {name[:40]!r} has the unsupported type {tensor.dtype}")
    try:
        tree = json.loads(document.numpy().tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise RecordError(f"its document is not valid JSON within the depth limit ({type(error).__name__})") from None
    budget = [MAX_VALUES]
    return _value(tree, tensors, 0, budget)


def _value(node: Any, tensors: dict[str, torch.Tensor], depth: int, budget: list[int]) -> Any:
    """The Python value of one tagged JSON node, checked against the caps."""
    budget[0] -= 1
    if budget[0] < 0:
        raise RecordError(f"it holds more than {MAX_VALUES} values")
    if depth > MAX_DEPTH:
        raise RecordError(f"it is nested deeper than {MAX_DEPTH} levels")
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        if abs(node) > 2**63:
            raise RecordError("it holds an integer beyond 64 bits")
        return node
    if isinstance(node, float):  # NaN and infinities included: judges reject them with their own message
        return node
    if isinstance(node, str):
        if len(node) > MAX_STRING:
            raise RecordError(f"it holds a string of {len(node)} characters, more than {MAX_STRING}")
        return node
    if not (isinstance(node, dict) and len(node) == 1):
        raise RecordError("its document has a value of no known kind")
    (kind, content), = node.items()
    if kind == "tensor":
        if not isinstance(content, str) or content not in tensors:
            raise RecordError("its document names a tensor it does not hold")
        return tensors[content]
    if kind in ("list", "tuple") and isinstance(content, list):
        items = [_value(item, tensors, depth + 1, budget) for item in content]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict" and isinstance(content, list):
        result = {}
        for pair in content:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise RecordError("its document has a malformed dict")
            key = _value(pair[0], tensors, depth + 1, budget)
            if not isinstance(key, (str, int, float, bool, type(None), tuple)):
                raise RecordError("its document has a dict key that is not a plain value")
            try:
                result[key] = _value(pair[1], tensors, depth + 1, budget)
            except TypeError:
                raise RecordError("its document has an unhashable dict key") from None
        return result
    raise RecordError(f"its document has a value of unknown kind {str(kind)[:40]!r}")
