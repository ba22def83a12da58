"""Post-training compression of a trained model, and the size and scoring speed it is judged by.

Two methods, applied to a copy of a trained model (``m6bench run --compress int8,prune:0.5``):

* ``int8`` — post-training *dynamic* quantization (Jacob et al., "Quantization and Training of
  Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018; PyTorch's
  ``quantize_dynamic``): ``nn.Linear`` / ``nn.GRU`` / ``nn.LSTM`` weights become int8 with their
  activations quantized on the fly. Embedding tables and content tables (frozen text / KG vectors)
  — most of a recommender's bytes, and untouched by ``quantize_dynamic`` — get per-row symmetric
  int8 *weight-only* quantization: each row is stored as int8 plus one float scale and used
  dequantized, so their arithmetic stays float but every value carries only int8 precision.
* ``prune:<ratio>`` — global magnitude pruning (Han et al., "Learning both Weights and Connections
  for Efficient Neural Networks", NeurIPS 2015; ``torch.nn.utils.prune.global_unstructured`` with
  L1 magnitude): the ``ratio`` smallest-magnitude entries of all Linear and Embedding weights
  together are set to zero, no fine-tuning. A pruned tensor is stored as a bitmap of its non-zero
  entries plus their values when that is smaller than dense; scoring still runs dense, so pruning
  saves bytes, not time, on a CPU.

:func:`model_bytes` is the serialized size (``torch.save``) of every dense tensor the model scores
with — parameters, persistent and non-persistent buffers (content tables included) — in the form
the method stores it. Sparse buffers (the training graph's adjacency of graph models, derived from
the data and left as is by both methods) are not counted. :func:`scoring_speed` is full-ranking
throughput in users per second on an evaluation loader.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from m6rec_bench import compat
from m6rec_bench.errors import UsageError
from m6rec_bench.lookup import Registry

#: A float buffer of at least this many values with one row per entity is a content table.
_TABLE_MIN_VALUES = 1024


@dataclass(frozen=True)
class Method:
    """A parsed ``--compress`` value."""

    kind: Literal["int8", "prune"]
    ratio: float | None = None

    @property
    def name(self) -> str:
        return "int8" if self.kind == "int8" else f"prune:{self.ratio:g}"


def _int8(arg: str | None, text: str) -> Method:
    if arg is not None:
        raise _METHODS.error("int8", text=text, hint="")  # "int8:…" takes no argument
    return Method("int8")


def _prune(arg: str | None, text: str) -> Method:
    if arg is None:
        raise _METHODS.error("prune", text=text, hint="")  # the ratio is required
    try:
        r = float(arg)
    except ValueError:
        r = float("nan")
    if 0.0 < r < 1.0:
        return Method("prune", r)
    raise UsageError(f"--compress {text}: the pruning ratio must be a number between 0 and 1 (e.g. prune:0.5)")


#: ``--compress`` methods: name -> ``(argument after ':' or None, the value as given) -> Method``.
_METHODS: Registry[Callable[[str | None, str], Method]] = Registry(
    "compression method",
    unknown="--compress {text!r} is not a compression method{hint}; use int8 or prune:<ratio> (e.g. prune:0.5)")
_METHODS.register("int8", _int8)
_METHODS.register("prune", _prune)


def parse(text: str) -> Method:
    """``"int8"`` or ``"prune:<ratio>"`` with 0 < ratio < 1; UsageError otherwise."""
    kind, sep, arg = text.strip().lower().partition(":")
    return _METHODS.get(kind, text=text)(arg if sep else None, text)


def _int8_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8: ``(q int8, scale float32)`` with ``t ≈ q * scale``."""
    flat = t.detach().float().reshape(t.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(flat / scale.unsqueeze(1)).clamp(-127, 127).to(torch.int8)
    return q.reshape(t.shape), scale


def _tables(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(owner module, attribute, qualified name) of every embedding weight and dense content table."""
    out = []
    for mname, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            out.append((module, "weight", f"{mname}.weight"))
        for bname, buf in module.named_buffers(recurse=False):
            if (buf is not None and buf.is_floating_point() and buf.layout == torch.strided and buf.dim() == 2
                    and buf.numel() >= _TABLE_MIN_VALUES):
                out.append((module, bname, f"{mname}.{bname}" if mname else bname))
    return out


def _refresh(model: nn.Module) -> nn.Module:
    """Drop the caches a model keeps of its vectors (they are rebuilt from the new weights)."""
    was_training = model.training
    model.train()
    model.train(was_training)
    return model.eval()


def copy_to_cpu(model: nn.Module) -> nn.Module:
    """A deep copy on the CPU that shares the model's sparse tensors (neither method changes them, and
    torch cannot deep-copy a sparse CSR tensor); plain tensor attributes on a GPU are copied over."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        for value in [*vars(module).values(), *module._buffers.values()]:
            if isinstance(value, torch.Tensor) and value.layout != torch.strided:
                memo[id(value)] = value.cpu()  # the same tensor when it is on the CPU already
    return copy.deepcopy(model, memo).cpu().eval()


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with int8 dynamic quantization and int8 tables (see the module doc)."""
    q = copy_to_cpu(model)
    stored: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.no_grad():
        for owner, attr, name in _tables(q):
            tensor = getattr(owner, attr)
            codes, scale = _int8_rows(tensor)
            tensor.copy_((codes.float().reshape(codes.shape[0], -1) * scale.unsqueeze(1)).reshape(tensor.shape))
            stored[name] = (codes, scale)
    with warnings.catch_warnings():  # torch 2.13 marks its quantized dtypes deprecated (pytorch#184982)
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*", category=UserWarning)
        # torch.ao.quantization is deprecated in favour of torchao (pytorch/ao#2259), which is not a dependency;
        # the eager-mode API still ships in torch 2.13 (pinned). Moving to torchao is the real fix, noted in the issues.
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        q = torch.ao.quantization.quantize_dynamic(q, {nn.Linear, nn.GRU, nn.LSTM}, dtype=torch.qint8, inplace=True)
    q._m6_int8_tables = stored  # type: ignore[attr-defined]
    return _refresh(q)


def prune_magnitude(model: nn.Module, ratio: float) -> nn.Module:
    """A copy of ``model`` with the ``ratio`` smallest-magnitude Linear/Embedding weights set to zero."""
    from torch.nn.utils import prune

    p = copy_to_cpu(model)
    targets = [(m, "weight") for m in p.modules() if isinstance(m, nn.Linear | nn.Embedding)]
    if not targets:
        raise UsageError(f"{type(model).__name__} has no Linear or Embedding weights to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=ratio)
    pruned = set()
    for name, module in p.named_modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            prune.remove(module, "weight")
            pruned.add(f"{name}.weight")
    p._m6_pruned = pruned  # type: ignore[attr-defined]
    return _refresh(p)


def apply(model: nn.Module, method: Method) -> nn.Module:
    """The compressed copy of a trained model; the original is left as it is."""
    return quantize_int8(model) if method.kind == "int8" else prune_magnitude(model, float(method.ratio))


def _stored_form(model: nn.Module) -> dict[str, Any]:
    """Every dense tensor the model scores with, as its compression method would store it."""
    qd = torch.ao.nn.quantized.dynamic
    int8 = getattr(model, "_m6_int8_tables", {})
    pruned = getattr(model, "_m6_pruned", set())
    out: dict[str, Any] = {}
    seen: set[int] = set()
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t is None or t.layout != torch.strided or id(t) in seen:
            continue
        seen.add(id(t))
        if name in int8:
            out[f"{name}.int8"], out[f"{name}.scale"] = int8[name]
        elif name in pruned:
            out[name] = _bitmap_or_dense(t.detach())
        else:
            out[name] = t.detach()
    for mname, module in model.named_modules():
        if isinstance(module, qd.Linear):
            out[f"{mname}.weight"] = module.weight()
            out[f"{mname}.bias"] = module.bias()
        elif isinstance(module, qd.GRU | qd.LSTM):
            out[f"{mname}.packed"] = module.state_dict()
    return out


def _bitmap_or_dense(t: torch.Tensor) -> Any:
    """A pruned tensor as (non-zero bitmap, non-zero values) when that is smaller than dense."""
    mask = t != 0
    nnz = int(mask.sum())
    if t.numel() / 8 + nnz * t.element_size() >= t.numel() * t.element_size():
        return t
    bits = torch.from_numpy(np.packbits(mask.cpu().numpy().ravel()))
    return {"shape": tuple(t.shape), "bitmap": bits, "values": t[mask].clone()}


def model_bytes(model: nn.Module) -> int:
    """Serialized bytes of the model's dense tensors in their stored form (see the module doc)."""
    buf = io.BytesIO()
    torch.save(_stored_form(model), buf)
    return buf.tell()


def nonzero_params(model: nn.Module) -> int:
    """Parameters that are not zero (all of them, for an unpruned float model)."""
    n = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    for module in model.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            n += int(torch.count_nonzero(module.weight().int_repr()))
    return n


@torch.no_grad()
def scoring_speed(model: nn.Module, eval_data: Any, *, repeats: int = 3) -> float:
    """Full-ranking throughput in users per second (median of ``repeats`` passes after a warm-up).

    A pass scores every user of ``eval_data`` against every item (``full_sort_predict``, history
    masked) and takes the top 20, as the evaluator does.
    """
    from m6rec_bench.evaluation import _device_of, _score_batch

    model.eval()
    dataset = compat.loader_dataset(eval_data)
    device = _device_of(model)

    try:  # only models without full_sort_predict need the item features
        items = dataset.get_item_feature().to(device)
    except Exception:  # noqa: BLE001
        items = None

    def one_pass() -> tuple[float, int]:
        t = time.perf_counter()
        users = 0
        for batched in eval_data:
            scores = _score_batch(model, batched, eval_data, device, dataset.item_num, items)
            torch.topk(scores, 20, dim=-1)
            users += scores.shape[0]
        return time.perf_counter() - t, users

    one_pass()
    times = []
    users = 0
    for _ in range(repeats):
        dt, users = one_pass()
        times.append(dt)
    return users / float(np.median(times))
