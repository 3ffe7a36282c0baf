"""Batch norm with statistics over the global batch of a data-parallel run (``--sync-bn``).

Training-mode batch norm on worker ``r`` with input ``x_r [n_r, C, *]`` normalises with the
statistics of all workers' inputs together::

    S   = sum_r sum_{i, *} x_r          Q = sum_r sum_{i, *} x_r^2        M = sum_r n_r * prod(*)
    mu  = S / M                         var = Q / M - mu^2                 (biased, as BN normalises)
    y_r = (x_r - mu) / sqrt(var + eps) * weight + bias
    running_mean <- (1 - m) running_mean + m mu
    running_var  <- (1 - m) running_var  + m var * M / (M - 1)            (unbiased, as BN keeps)

The three sums are one all-reduce of ``[2C + 1]`` values; it is differentiable
(``AllReduceSum``: the gradient of a sum over workers is the sum
of the workers' gradients), so every worker's gradient is the one a single process would get for
the whole batch. In eval mode, or without a process group, it is ordinary batch norm.

On CUDA (NCCL) ``convert_sync_batchnorm`` uses torch's own ``nn.SyncBatchNorm``; torch's
refuses CPU tensors, so CPU workers (gloo) use ``GlooSyncBatchNorm`` below. Parameter and
buffer names are batch norm's, so a checkpoint loads into the model its genotype builds.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class AllReduceSum(torch.autograd.Function):
    """``sum_r x_r`` over the workers, differentiable: the gradient of each ``x_r`` is the sum of
    the workers' gradients of the result."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        out = grad.contiguous().clone()
        dist.all_reduce(out)
        return out


class GlooSyncBatchNorm(_BatchNorm):
    """Batch norm over the global batch of every worker (module docstring); any input ``[N, C, *]``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions [N, C, *], got {input.dim()}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        x = input.float()
        count = torch.full((1,), float(x.numel() // x.shape[1]), device=x.device, dtype=x.dtype)
        stats = AllReduceSum.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * total / (total - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = [1, channels] + [1] * (input.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every batch norm synchronised over the workers (torch's ``SyncBatchNorm``
    on CUDA, ``GlooSyncBatchNorm`` elsewhere); weights and running statistics are kept."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, _BatchNorm) and not isinstance(module, (GlooSyncBatchNorm, nn.SyncBatchNorm)):
        out = GlooSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        return out
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module
