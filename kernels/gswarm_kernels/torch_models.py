"""torch twins of the built-in architectures; `state_dict()` keys are the shared parameter names."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .builtin import normalize_config
from .checkpoint import mapped
from .params import GPT_MLP_RATIO, LAYER_NORM_EPS, Params, check_params

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class _NoInitOnMeta:
    """Skips a layer's random init on the meta device: a module is built there only to take a
    checkpoint's tensors, and the init would dispatch its kernels over no values."""

    weight: torch.Tensor

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()  # type: ignore[misc]


class Linear(_NoInitOnMeta, nn.Linear):
    pass


class Embedding(_NoInitOnMeta, nn.Embedding):
    pass


class BuiltinModule(nn.Module):
    """A built-in architecture, knowing its name and (normalised) config."""

    def __init__(self, arch: str, config: dict[str, Any]) -> None:
        super().__init__()
        self.arch = arch
        self.config = config


class MLP(BuiltinModule):
    """Vectors in, vectors out: Linear layers with an activation between them."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__("mlp", config)
        widths = [config["in"], *config["hidden"], config["out"]]
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.layers = nn.ModuleList(Linear(a, b) for a, b in pairs)
        self.act = _ACTIVATIONS[config["activation"]]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = Linear(d_model, 3 * d_model)
        self.proj = Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (
            t.view(batch, time, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, time, d))


class FeedForward(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.fc = Linear(d_model, GPT_MLP_RATIO * d_model)
        self.proj = Linear(GPT_MLP_RATIO * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.attn = CausalSelfAttention(d_model, heads)
        self.ln2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.mlp = FeedForward(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(BuiltinModule):
    """Decoder-only LM: token ids `(batch, time)` in, logits `(batch, time, vocab)` out."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__("gpt", config)
        d = config["d_model"]
        self.context = config["context"]
        self.tok_emb = Embedding(config["vocab"], d)
        self.pos_emb = Embedding(config["context"], d)
        self.blocks = nn.ModuleList(Block(d, config["heads"]) for _ in range(config["layers"]))
        self.ln_f = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.head = Linear(d, config["vocab"], bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        time = tokens.shape[1]
        if time > self.context:
            raise ValueError(f"sequence length: expected at most {self.context}, got {time}")
        positions = torch.arange(time, device=tokens.device)
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def build_module(
    arch: str, config: dict[str, Any], params: Params | None = None, device: str = "cpu"
) -> BuiltinModule:
    """The torch module for `arch` on `device`, in eval mode, loaded with `params` if given."""
    config = normalize_config(arch, config)
    # With params given, build on the meta device: no throwaway random init.
    with torch.device("meta") if params is not None else nullcontext():
        module: BuiltinModule = MLP(config) if arch == "mlp" else GPT(config)
    if params is None:
        return module.to(device).eval()
    # Adopted, the params become the module's storage. No check before: a fresh module that a
    # wrong name or shape left half-filled is dropped with the error.
    adopt = torch.device(device).type == "cpu" and _all_adoptable(params)
    if not adopt:
        module = module.to_empty(device=device)
    _put_params(module, params, adopt)
    return module.eval()


def load_params(module: BuiltinModule, params: Params) -> None:
    """Copy numpy parameters into `module` (on whatever device it sits). A CPU module adopts
    instead the float32 arrays `read_checkpoint` mapped copy-on-write (no copy: the model's
    storage is the file's mapping, each page read when first used, private once written)."""
    check_params(module.arch, module.config, params)  # before any is put: the module stays whole
    adopt = _all_adoptable(params) and all(
        t.device.type in ("cpu", "meta") for t in module.state_dict().values()
    )
    _put_params(module, params, adopt)


def _put_params(module: BuiltinModule, params: Params, adopt: bool) -> None:
    """`params` into `module`; a wrong name or shape is a ValueError saying which."""
    state = {
        name: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        for name, value in params.items()
    }
    try:
        module.load_state_dict(state, strict=True, assign=adopt)
    except RuntimeError:  # load_state_dict checked names and shapes: say it as the API does
        check_params(module.arch, module.config, params)
        raise


def _all_adoptable(params: Params) -> bool:
    return all(_adoptable(value) for value in params.values())


def _adoptable(value: Any) -> bool:
    return (
        mapped(value)
        and value.dtype == np.float32
        and value.flags.c_contiguous
        and value.flags.aligned
        and value.flags.writeable
    )


def module_params(module: nn.Module) -> Params:
    """The module's parameters as float32 numpy arrays (copies, on the host)."""
    return {
        name: tensor.detach().to("cpu", torch.float32).numpy().copy()
        for name, tensor in module.state_dict().items()
    }


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device
