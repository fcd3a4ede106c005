"""An estimator's file: save, load, resolve a name, and check filters and model against it."""

from __future__ import annotations

__all__ = ["FORMAT", "EstimatorFiles"]

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import torch

from .bounds import TargetSpace
from .encoding import ObservationEncoder
from .network import PosteriorNetwork
from .recalibration import Recalibration
from .storage import read_tensors, write_tensors

#: Version of the estimator file layout; files of a newer format are refused.
FORMAT = 1


class EstimatorFiles:
    """Files, names and provenance checks of :class:`AmortizedPosterior` (its base class).

    Safetensors weights with a JSON header (:func:`~prospect_sbi.posterior.storage.write_tensors`):
    nothing is unpickled.
    """

    header: dict[str, Any]
    filters: list[str]
    model_spec: dict
    model_hash: str
    network: PosteriorNetwork
    space: TargetSpace
    encoder: ObservationEncoder
    recalibration: Recalibration | None

    def check(self, filters: Sequence | None = None, model: object = None) -> None:
        """Raise if ``filters`` or ``model`` differ from those the estimator was trained on.

        Parameters
        ----------
        filters : sequence, optional
            sedpy filters, a ``FilterSet`` or band names (``"F444W"`` or ``"jwst_f444w"``).
        model : prospect.models.ProspectorParams, optional
            Compared through the hash of its specification.

        Raises
        ------
        ValueError
            Naming the first band that differs, or the model hashes and parameters.
        """
        if filters is not None:
            names = _band_names(filters)
            if names != self.filters:
                pairs = zip(names, self.filters, strict=False)
                diff = next((i for i, (a, b) in enumerate(pairs) if a != b),
                            min(len(names), len(self.filters)))  # fmt: skip
                got = names[diff] if diff < len(names) else "nothing"
                want = self.filters[diff] if diff < len(self.filters) else "nothing"
                raise ValueError(
                    f"filters differ from the estimator's at position {diff}: got {got}, "
                    f"expected {want} ({len(names)} bands given, {len(self.filters)} expected)"
                )
        if model is not None:
            from ..provenance import model_hash, model_spec

            spec = model_spec(model)
            if model_hash(spec) != self.model_hash:
                ours, theirs = self.model_spec["theta_labels"], spec["theta_labels"]
                raise ValueError(
                    f"model differs from the estimator's (hash {model_hash(spec)} vs "
                    f"{self.model_hash}); free parameters {theirs} vs {ours}"
                )

    def model(self) -> object:
        """Rebuild the Prospector ``SpecModel`` this estimator was trained on.

        From the stored specification (:func:`prospect_sbi.provenance.model_from_spec`):
        standard priors and transforms of Prospector and prospect-sbi; the result hashes to
        :attr:`model_hash`.
        """
        from ..provenance import model_from_spec

        return model_from_spec(self.model_spec)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write weights and everything needed to use them to one safetensors file.

        Raises
        ------
        FileExistsError
            ``path`` exists and ``overwrite`` is False.
        """
        path = Path(path)
        header = dict(self.header, format=FORMAT, network=self.network.config,
                      targets=self.space.to_dict(), encoder=self.encoder.to_dict())  # fmt: skip
        header.pop("recalibration", None)
        if self.recalibration is not None:
            header["recalibration"] = self.recalibration.to_dict()
        write_tensors(path, self.network.state_dict(), header, overwrite=overwrite)
        return path

    @classmethod
    def resolve(cls, estimator: Any) -> Self:
        """Return an estimator given as itself, a file or a pretrained name.

        Raises
        ------
        ValueError
            A string that is neither a file nor a pretrained name, or another type.
        """
        from ..pretrained import PRETRAINED

        if isinstance(estimator, cls):
            return estimator
        if isinstance(estimator, str | os.PathLike):
            if Path(estimator).is_file():
                return cls.load(estimator)
            if str(estimator) in PRETRAINED:
                return cls.pretrained(str(estimator))
            raise ValueError(f"estimator {str(estimator)!r} is neither a file nor a pretrained "
                             f"name ({', '.join(PRETRAINED)})")  # fmt: skip
        raise ValueError(f"estimator must be an AmortizedPosterior, a path or a name; got "
                         f"{type(estimator).__name__}")  # fmt: skip

    @classmethod
    def pretrained(cls, name: str, device: str | torch.device = "cpu") -> Self:
        """Load a pretrained estimator shipped with the package.

        Parameters
        ----------
        name : str
            One of :data:`prospect_sbi.pretrained.PRETRAINED` (``"jades-parametric"``,
            ``"jades-continuity"``); :func:`prospect_sbi.pretrained_model` gives its
            Prospector model.
        device : str or torch.device
        """
        from ..pretrained import pretrained_path

        return cls.load(pretrained_path(name), device)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        *,
        filters: Sequence | None = None,
        model: object = None,
    ) -> Self:
        """Read an estimator written by :meth:`save` (safetensors + JSON; nothing is unpickled).

        Parameters
        ----------
        path : path-like
            The file.
        device : str or torch.device
            Where to put the network.
        filters, model : optional
            Checked with :meth:`check` before the estimator is returned.

        Raises
        ------
        ValueError
            Not an estimator file, one of a newer format, or filters or model that differ.
        """
        tensors, header = read_tensors(path, device)
        if "network" not in header or "targets" not in header:
            raise ValueError(f"{path} is not a prospect-sbi estimator (a checkpoint?)")
        if int(header.get("format", 0)) > FORMAT:
            raise ValueError(f"{path} has format {header['format']}, newer than this code "
                             f"({FORMAT}): upgrade prospect-sbi")  # fmt: skip
        network = PosteriorNetwork.from_config(header["network"])
        try:
            network.load_state_dict(tensors)
        except RuntimeError:
            raise ValueError(
                f"{path}: the weights do not fit the network its header describes "
                "(a damaged file, or one from an incompatible version)"
            ) from None
        space = TargetSpace.from_dict(header["targets"])
        encoder = ObservationEncoder.from_dict(header["encoder"])
        posterior = cls(network.to(device), space, encoder, header)
        posterior.check(filters=filters, model=model)
        return posterior


def _band_names(filters: Sequence) -> list[str]:
    """Return the sedpy names of sedpy filters, a ``FilterSet`` or band names."""
    from ..filters import resolve_band_names
    from ..provenance import filter_names

    items = list(getattr(filters, "filters", filters))
    if all(isinstance(f, str) for f in items):
        return resolve_band_names(items)
    return filter_names(items)
