"""An estimator's file: save, load, resolve a name, and check filters and model against it."""

from __future__ import annotations

__all__ = ["FORMAT", "EstimatorFiles"]

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from .bounds import TargetSpace
from .encoding import ObservationEncoder
from .network import PosteriorNetwork
from .recalibration import Recalibration
from .storage import digest, read_tensors, write_tensors

#: Version of the estimator file layout; files of a newer format are refused. Format 2 files
#: carry a checksum (:mod:`prospect_sbi.posterior.storage`); format 1 files predate it.
FORMAT = 2
#: Header entries an estimator file must have.
_REQUIRED = (
    "filters",
    "redshift",
    "noise",
    "model_spec",
    "model_hash",
    "flux_stats",
    "network",
    "targets",
    "encoder",
)


class EstimatorFiles:
    """Files, names and provenance checks of :class:`AmortizedPosterior` (its base class).

    Safetensors weights with a JSON header and a checksum of both
    (:func:`~prospect_sbi.posterior.storage.write_tensors`): nothing is unpickled.
    """

    header: dict[str, Any]
    filters: list[str]
    model_spec: dict
    model_hash: str
    network: PosteriorNetwork
    space: TargetSpace
    encoder: ObservationEncoder
    recalibration: Recalibration | None
    _model: Any

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
            Naming the first band that differs, or the first model parameter that differs
            and how (:func:`~prospect_sbi.provenance.model_difference`).
        """
        if filters is not None:
            names = _band_names(filters)
            if names != self.filters:
                pairs = zip(names, self.filters, strict=False)
                diff = next(
                    (i for i, (a, b) in enumerate(pairs) if a != b),
                    min(len(names), len(self.filters)),
                )
                got = names[diff] if diff < len(names) else "nothing"
                want = self.filters[diff] if diff < len(self.filters) else "nothing"
                raise ValueError(
                    f"filters differ from the estimator's at position {diff}: got {got}, "
                    f"expected {want} ({len(names)} bands given, {len(self.filters)} expected)"
                )
        if model is not None:
            from ..provenance import model_difference, model_hash, model_spec

            spec = model_spec(model)
            if model_hash(spec) != self.model_hash:
                raise ValueError(
                    model_difference(spec, self.model_spec)
                    or f"model differs from the estimator's (hash "
                    f"{model_hash(spec)} vs {self.model_hash})"
                )

    def model(self) -> object:
        """Rebuild the Prospector ``SpecModel`` this estimator was trained on.

        From the stored specification (:func:`prospect_sbi.provenance.model_from_spec`):
        standard priors and transforms of Prospector and prospect-sbi; the result hashes to
        :attr:`model_hash`.

        Raises
        ------
        ValueError
            A model of the user's own functions or classes, which a specification cannot
            rebuild; the message says to pass the parameter file (``--param-file``).
        """
        from ..provenance import model_from_spec

        try:
            model = model_from_spec(self.model_spec)
        except ValueError as err:
            raise ValueError(
                f"the estimator's model cannot be rebuilt from its stored "
                f"specification ({err}); pass the Prospector parameter file it "
                "was trained with (--param-file, or model=)"
            ) from None
        if self.trained_without_dust_emission:
            model.params["add_dust_emission"] = np.array([False])
        return model

    @property
    def trained_without_dust_emission(self) -> bool:
        """A file from before BC03MilesBasis had dust emission, of a model that does not say.

        Its training set was simulated without dust emission, so the model rebuilt from it
        (:meth:`model`) switches it off, where FSPS's default (and BC03MilesBasis's now) is on.
        """
        version = self.header.get("versions", {}).get("prospect-sbi", "0")
        params = self.model_spec.get("params", {})
        return "add_dust_emission" not in params and version.split(".")[:2] == ["0", "1"]

    def resolve_model(self, model: object = None) -> object:
        """Return the estimator's model: ``model`` checked (:meth:`check`), or :meth:`model`.

        Every stage rebuilds the model this way, so a parameter file's model (given) and the
        stored specification (not given) lead to the same model.

        Raises
        ------
        ValueError
            ``model`` differs from the estimator's (naming the first difference), or none is
            given and the stored one cannot be rebuilt.
        """
        if model is None:
            return self.model()
        self.check(model=model)
        if self.trained_without_dust_emission and "add_dust_emission" not in model.params:
            warnings.warn(
                "this estimator was trained without dust emission (prospect-sbi 0.1) but the "
                "model given does not set add_dust_emission, which FSPS and BC03MilesBasis "
                "switch on: fix add_dust_emission=False in it to predict what it learned",
                stacklevel=2,
            )
        self._model = model  # refinement uses it too (a stored spec may not rebuild it)
        return model

    @property
    def fixed_zred(self) -> float | None:
        """The redshift the estimator's model fixes (``zred`` not free), else None.

        An estimator of such a model was trained at that one redshift: it fits objects at
        that redshift only (within :func:`~prospect_sbi.posterior.checks.zred_tolerance`).
        """
        import numpy as np

        info = self.model_spec.get("params", {}).get("zred")
        if info is None or info.get("isfree", False) or info.get("init") is None:
            return None
        return float(np.ravel(info["init"])[0])

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write weights and everything needed to use them to one safetensors file.

        Raises
        ------
        FileExistsError
            ``path`` exists and ``overwrite`` is False.
        """
        path = Path(path)
        write_tensors(path, self.network.state_dict(), self._file_header(), overwrite=overwrite)
        return path

    def _file_header(self) -> dict[str, Any]:
        """Return the JSON header :meth:`save` writes beside the weights."""
        header = dict(
            self.header,
            format=FORMAT,
            network=self.network.config,
            targets=self.space.to_dict(),
            encoder=self.encoder.to_dict(),
        )
        header.pop("recalibration", None)
        if self.recalibration is not None:
            header["recalibration"] = self.recalibration.to_dict()
        return header

    def digest(self) -> str:
        """SHA-256 (hex) of the weights and of everything :meth:`save` writes beside them.

        Two estimators with the same digest give the same draws for the same seed; resumable
        jobs (:func:`~prospect_sbi.pixels.fit_pixels` with ``parts``) record it.
        """
        text = json.dumps(self._file_header(), sort_keys=True, default=str)
        return digest(self.network.state_dict(), text)

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
            raise ValueError(
                f"estimator {str(estimator)!r} is neither a file nor a pretrained "
                f"name ({', '.join(PRETRAINED)})"
            )
        raise ValueError(
            f"estimator must be an AmortizedPosterior, a path or a name; got "
            f"{type(estimator).__name__}"
        )

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
        from ..pretrained import pretrained_path, pretrained_redshift

        post = cls.load(pretrained_path(name), device)
        if pretrained_redshift(name) == "infer":  # refinement's guide: the known-z twin
            post.redshift_guide = name.removesuffix("-photoz")
        return post

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
            Not an estimator file, one of a newer format, a damaged file (checksum, header
            entries, a network configuration that does not describe the stored weights), or
            filters or model that differ.
        """
        tensors, header = read_tensors(path)
        if header.get("kind") == "checkpoint":
            raise ValueError(f"{path} is a training checkpoint, not an estimator")
        fmt = header.get("format")
        if not isinstance(fmt, int) or fmt > FORMAT:
            raise ValueError(
                f"{path} has format {fmt!r}; this code reads formats 1 to {FORMAT}"
                " (upgrade prospect-sbi for a newer one)"
            )
        lacking = [k for k in _REQUIRED if k not in header]
        if lacking:
            raise ValueError(
                f"{path} is not a complete prospect-sbi estimator: its header has "
                f"no {', '.join(map(repr, lacking))}"
            )
        try:
            network = PosteriorNetwork.from_weights(header["network"], tensors)
            parts = {"targets": TargetSpace.from_dict, "encoder": ObservationEncoder.from_dict}
            space, encoder = (parts[k](header[k]) for k in ("targets", "encoder"))
            posterior = cls(network.to(device), space, encoder, header)
            _check_parts(posterior)
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise ValueError(f"{path}: {_reason(err)}") from None
        posterior.check(filters=filters, model=model)
        return posterior


def _check_parts(estimator: EstimatorFiles) -> None:
    """Raise if the header's parts disagree with each other (a damaged or edited file)."""
    bands, config = len(estimator.encoder.bands), estimator.network.config
    sizes = {
        "targets": (len(estimator.space), config["n_targets"]),
        "encoded inputs": (estimator.encoder.n_features, config["n_inputs"]),
        "filters": (len(estimator.filters), bands),
        "noise bands": (len(estimator.noise.bands), bands),
    }
    for what, (have, want) in sizes.items():
        if have != want:
            raise ValueError(
                f"the estimator's header lists {have} {what}; its network and encoder have {want}"
            )


def _reason(err: Exception) -> str:
    """One line for an error raised while rebuilding an estimator from its header."""
    if isinstance(err, ValueError):
        return str(err)
    if isinstance(err, KeyError):
        return f"its header lacks the entry {err.args[0]!r}"
    return f"its header is not what this version writes ({type(err).__name__}: {err})"


def _band_names(filters: Sequence) -> list[str]:
    """Return the sedpy names of sedpy filters, a ``FilterSet`` or band names."""
    from ..filters import resolve_band_names
    from ..provenance import filter_names

    items = list(getattr(filters, "filters", filters))
    if all(isinstance(f, str) for f in items):
        return resolve_band_names(items)
    return filter_names(items)
