"""Training state saved after every epoch, so that a killed run resumes where it stopped."""

from __future__ import annotations

__all__ = ["Checkpoint"]

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from .storage import flatten_optimizer, read_tensors, unflatten_optimizer, write_tensors

_FORMAT = 2  # 2: with a checksum (storage.CHECKSUM_SINCE)


class Checkpoint:
    """Progress of a training run, and the file that keeps it (optional).

    The file holds the weights, the best weights, the optimizer's moments, the schedule, the
    history and the training configuration, as safetensors plus a JSON header (no pickle). It
    is replaced atomically after every epoch. Every epoch draws its noise, dropout and batch
    order from ``(seed, epoch)``, so a resumed run continues exactly as an uninterrupted one.

    Parameters
    ----------
    path : path-like, optional
        Checkpoint file; None keeps the state in memory only.
    config : dict
        Training configuration (JSON-able); a file written with another one is refused.
    """

    def __init__(self, path: str | os.PathLike | None, config: dict[str, Any]) -> None:
        self.path = None if path is None else Path(path)
        self.config = json.loads(json.dumps(config))
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_val, self.best_epoch, self.bad_epochs = math.inf, 0, 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stopped = False
        self.resumed_at: int | None = None

    def restore(
        self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
    ) -> None:
        """Load the file's state into ``net``, ``optimizer`` and ``scheduler`` if it exists.

        Raises
        ------
        ValueError
            The file is not a checkpoint, or was written with another configuration.
        """
        if self.path is None or not self.path.exists():
            return
        tensors, header = read_tensors(self.path)
        if header.get("kind") != "checkpoint":
            raise ValueError(f"{self.path} is not a training checkpoint")
        diff = sorted(
            k
            for k in set(self.config) | set(header["config"])
            if self.config.get(k) != header["config"].get(k)
        )
        if diff:
            raise ValueError(
                f"checkpoint {self.path} comes from another training configuration (differs in "
                f"{', '.join(diff)}); delete it or pass another checkpoint path"
            )
        device = next(net.parameters()).device
        try:
            net.load_state_dict(_prefixed(tensors, "model.", device))
            best = _prefixed(tensors, "best.", device)
            optimizer.load_state_dict(unflatten_optimizer(tensors, header["optimizer"]))
            scheduler.load_state_dict(header["scheduler"])
            for key in ("epoch", "history", "best_val", "best_epoch", "bad_epochs", "stopped"):
                setattr(self, key, header[key])
        except (RuntimeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"checkpoint {self.path} does not fit this training run "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                "delete it or pass another checkpoint path"
            ) from None
        self.best_weights = best or None
        self.resumed_at = self.epoch

    def record(
        self,
        net: torch.nn.Module,
        train_loss: float,
        val_loss: float,
        lr: float,
        seconds: float,
        patience: int,
    ) -> None:
        """Add an epoch; keep the weights if they are the best; decide on early stopping."""
        self.epoch += 1
        self.history.append(
            {
                "epoch": self.epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": lr,
                "seconds": seconds,
            }
        )
        if val_loss < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
            self.best_weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            self.bad_epochs += 1
            self.stopped = self.bad_epochs >= patience

    def save(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Write the state to the file (atomically), if there is one."""
        if self.path is None:
            return
        optim_tensors, optim_data = flatten_optimizer(optimizer.state_dict(), "optim")
        tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
        tensors |= {f"best.{k}": v for k, v in (self.best_weights or {}).items()}
        tensors |= optim_tensors
        header = {
            "kind": "checkpoint",
            "format": _FORMAT,
            "config": self.config,
            "epoch": self.epoch,
            "history": self.history,
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped": self.stopped,
            "optimizer": optim_data,
            "scheduler": scheduler.state_dict(),
        }
        write_tensors(self.path, tensors, header)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str, device: torch.device) -> dict:
    return {k[len(prefix) :]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}
