"""Prospector parameter files: the model, bands, ``run_params`` and SPS a user's file defines.

A parameter file, as Prospector's demos write them, is a Python file with ``build_model``,
``build_obs`` and ``build_sps`` (or the older ``load_model``, ``load_obs``, ``load_sps``),
each called with ``**run_params``, and a main block (``if __name__ == "__main__":``) that
parses Prospector's command line (``prospect_args.get_parser()``) and fits. Loading one here
imports it under another name, so its main block never runs; ``run_params`` is the file's
module-level dict when it has one, else the defaults of Prospector's parser (the build
functions' own keyword defaults then apply), updated with the caller's overrides.

The SPS is prospect-sbi's offline :class:`~prospect_sbi.sources.BC03MilesBasis` unless the
file's own ``build_sps`` is asked for (``sps="param-file"``): a demo's makes FSPS's
``CSPSpecBasis``, which needs ``$SPS_HOME`` and FSPS data.
"""

from __future__ import annotations

__all__ = ["SPS_SOURCES", "ParamFile", "fixed_zred", "load_param_file"]

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: Where the SPS comes from: prospect-sbi's offline BC03-MILES source, or the file's build_sps.
SPS_SOURCES = ("builtin", "param-file")

#: What a parameter file must define for each part, Prospector's names first.
_BUILDERS = {
    "model": ("build_model", "load_model"),
    "obs": ("build_obs", "load_obs"),
    "sps": ("build_sps", "load_sps"),
}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _default_run_params() -> dict[str, Any]:
    """Defaults of Prospector's command line (``prospect_args.get_parser()``)."""
    from prospect.utils import prospect_args

    return vars(prospect_args.get_parser().parse_args([]))


def fixed_zred(model: object) -> float | None:
    """Redshift of a Prospector model when it is fixed there (``zred`` not free), else None.

    Parameters
    ----------
    model : prospect.models.ProspectorParams

    Returns
    -------
    float or None
        ``model.params["zred"]``; None for a free redshift or a model without ``zred``.
    """
    config = getattr(model, "config_dict", {})
    info = config.get("zred")
    if info is None or info.get("isfree", False):
        return None
    return float(np.ravel(model.params["zred"])[0])


class ParamFile:
    """A Prospector parameter file, imported without running its main block.

    Parameters
    ----------
    path : path-like
        The ``.py`` file.
    run_params : dict, optional
        Overrides of the file's ``run_params`` (passed as keywords to its build functions).

    Attributes
    ----------
    path : pathlib.Path
    module : module
        The imported file.
    run_params : dict
        Keywords of the build functions, ``param_file`` included (as Prospector sets it).

    Raises
    ------
    ValueError
        No such file, a file that fails to import (the error in one line), or one without
        ``build_model``.
    """

    def __init__(self, path: str | os.PathLike, run_params: dict | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"--param-file {self.path}: no such file")
        self.module = self._import()
        self._builder("model")  # every use needs the model: say now if it is missing
        own = getattr(self.module, "run_params", None)
        params = dict(own) if isinstance(own, dict) else _default_run_params()
        params.update(run_params or {})
        params["param_file"] = str(self.path)
        self.run_params = params
        self._model: object = None
        self._obs: Any = None

    def _import(self) -> Any:
        name = f"prospect_sbi_param_file_{abs(hash(str(self.path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, self.path)
        if spec is None or spec.loader is None:
            raise ValueError(f"{self.path} is not a Python parameter file")
        module = importlib.util.module_from_spec(spec)
        folder = str(self.path.resolve().parent)
        sys.path.insert(0, folder)  # the file may import its neighbours, as under Prospector
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # anything a user's file raises, in one line
            raise ValueError(f"{self.path}: importing it failed: {_one_line(err)}") from None
        except SystemExit:
            raise ValueError(
                f"{self.path}: importing it called sys.exit() (is its main block "
                'guarded by if __name__ == "__main__":?)'
            ) from None
        finally:
            sys.path.remove(folder)
        return module

    def _builder(self, part: str) -> Any:
        for name in _BUILDERS[part]:
            func = getattr(self.module, name, None)
            if callable(func):
                return func
        have = [
            n
            for names in _BUILDERS.values()
            for n in names[:1]
            if callable(getattr(self.module, n, None))
        ]
        raise ValueError(
            f"{self.path} defines no {_BUILDERS[part][0]} (a Prospector parameter "
            f"file defines build_model, build_obs and build_sps; this one has "
            f"{', '.join(have) or 'none of them'})"
        )

    def _call(self, part: str) -> Any:
        func = self._builder(part)
        try:
            return func(**self.run_params)
        except Exception as err:  # a user's function: its error in one line
            raise ValueError(
                f"{self.path}: {func.__name__}(**run_params) failed: {_one_line(err)}"
            ) from None

    def model(self) -> object:
        """Build the file's model, ``build_model(**run_params)`` (built once).

        Raises
        ------
        ValueError
            ``build_model`` fails or returns something that is not a Prospector model.
        """
        if self._model is None:
            model = self._call("model")
            if not hasattr(model, "config_dict") or not hasattr(model, "theta_labels"):
                raise ValueError(
                    f"{self.path}: build_model returned a "
                    f"{type(model).__name__}, not a Prospector model"
                )
            self._model = model
        return self._model

    def obs(self) -> Any:
        """Build the file's observations, ``build_obs(**run_params)`` (built once).

        A Prospector 1.x ``obs`` dict, or the list of ``Observation`` objects of Prospector 2.
        """
        if self._obs is None:
            self._obs = self._call("obs")
        return self._obs

    def filters(self) -> list:
        """Return the sedpy filters of the file's photometry (from :meth:`obs`).

        Raises
        ------
        ValueError
            Observations without photometric filters.
        """
        obs = self.obs()
        if isinstance(obs, dict):
            filters = obs.get("filters")
        else:  # Prospector 2: a list of Observation objects
            phot = [o for o in obs if getattr(o, "kind", None) == "photometry"]
            filters = getattr(phot[0], "filters", None) if phot else None
        filters = list(getattr(filters, "filters", None) or filters or [])
        if not filters:
            raise ValueError(
                f"{self.path}: build_obs gives no photometric filters "
                "(obs['filters'] is empty); pass --bands"
            )
        return filters

    def bands(self) -> list[str]:
        """Return the sedpy names of :meth:`filters`, in order."""
        from .provenance import filter_names

        items = self.filters()
        return (
            [str(f) for f in items]
            if all(isinstance(f, str) for f in items)
            else filter_names(items)
        )

    def sps(self, source: str = "builtin") -> object:
        """Build the SPS of the fits: ``"builtin"`` (BC03MilesBasis) or ``"param-file"`` (its own).

        Raises
        ------
        ValueError
            An unknown ``source``, or the file's ``build_sps`` failing (e.g. FSPS without
            ``$SPS_HOME``), in one line.
        """
        if source not in SPS_SOURCES:
            raise ValueError(f"sps source {source!r} is unknown; use one of {SPS_SOURCES}")
        if source == "builtin":
            from .sources import BC03MilesBasis

            return BC03MilesBasis()
        try:
            return self._call("sps")
        except ValueError as err:
            raise ValueError(
                f"{err} (the default --sps builtin uses prospect-sbi's offline BC03MilesBasis)"
            ) from None

    def zred(self) -> float | None:
        """Return the model's redshift when it is fixed there (:func:`fixed_zred`), else None."""
        return fixed_zred(self.model())

    def __repr__(self) -> str:
        return f"ParamFile({str(self.path)!r})"


def load_param_file(path: str | os.PathLike, **run_params: Any) -> ParamFile:
    """Import a Prospector parameter file without running its main block.

    Parameters
    ----------
    path : path-like
        The ``.py`` file.
    **run_params
        Override the file's ``run_params`` (e.g. ``object_redshift=2.7``).

    Returns
    -------
    ParamFile
        ``.model()``, ``.obs()``, ``.filters()``, ``.bands()``, ``.sps()``, ``.zred()``,
        ``.run_params``.

    Examples
    --------
    >>> pf = load_param_file("examples/prospector_param_file.py")  # from the repository root
    >>> pf.model().free_params, pf.bands()[:2], pf.zred()
    (['mass', 'logzsol', 'dust2', 'tage', 'tau'], ['jwst_f090w', 'jwst_f115w'], 2.695)
    """
    return ParamFile(path, run_params)
