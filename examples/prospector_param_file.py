"""A Prospector parameter file, as Prospector's demos write them, used by prospect-sbi as is.

A parametric (delay-tau) SFH with nebular emission at the fixed redshift of JADES galaxy
123364 (z = 2.695), in eight NIRCam bands. With Prospector and FSPS it runs as usual::

    python prospector_param_file.py --dynesty --outfile=g123364

and the same file drives every prospect-sbi stage from the command line (``build_sps`` is
FSPS's, so prospect-sbi uses its offline BC03-MILES source unless ``--sps param-file``)::

    prospect-sbi simulate train.h5 -n 200000 --param-file prospector_param_file.py
    prospect-sbi train train.h5 g123364.sbi --param-file prospector_param_file.py
    prospect-sbi fit catalog.fits g123364.sbi -o fits.ecsv --param-file prospector_param_file.py
    prospect-sbi validate g123364.sbi -o report --param-file prospector_param_file.py
    prospect-sbi compare catalog.fits g123364.sbi -o cmp --param-file prospector_param_file.py

``simulate`` draws from this file's priors in this file's bands; the other stages check that
the estimator was trained on this model and take the redshift from it (fixed here), so a
catalogue needs no redshift column.
"""

import numpy as np
from prospect.models import SpecModel, priors
from prospect.models import transforms as pt
from prospect.models.templates import TemplateLibrary
from prospect.utils import prospect_args

#: Bands of the fit (sedpy names).
BANDS = [
    "jwst_f090w",
    "jwst_f115w",
    "jwst_f150w",
    "jwst_f200w",
    "jwst_f277w",
    "jwst_f356w",
    "jwst_f410m",
    "jwst_f444w",
]


def build_model(object_redshift=2.695, add_neb=True, **extras):
    """Delay-tau SFH at a fixed redshift, Chabrier IMF, power-law dust, nebular emission."""
    model_params = TemplateLibrary["parametric_sfh"]
    model_params["zred"]["init"] = object_redshift
    model_params["imf_type"]["init"] = 1  # Chabrier
    model_params["mass"]["prior"] = priors.LogUniform(mini=1e7, maxi=1e12)
    model_params["logzsol"]["prior"] = priors.TopHat(mini=-1.5, maxi=0.19)
    model_params["dust2"]["prior"] = priors.TopHat(mini=0.0, maxi=2.0)
    model_params["tage"]["prior"] = priors.TopHat(mini=0.01, maxi=2.5)  # universe: 2.5 Gyr
    model_params["tau"]["prior"] = priors.LogUniform(mini=0.1, maxi=10.0)
    if add_neb:
        model_params.update(TemplateLibrary["nebular"])
        model_params["gas_logz"]["depends_on"] = pt.stellar_logzsol
    return SpecModel(model_params)


def build_obs(phottable=None, objid=123364, **extras):
    """Photometry of one object (maggies) from ``phottable``, or the bands alone without it."""
    from sedpy.observate import load_filters

    obs = {
        "filters": load_filters(BANDS),
        "wavelength": None,
        "spectrum": None,
        "unc": None,
        "maggies": None,
        "maggies_unc": None,
    }
    if phottable is not None:
        from astropy.table import Table

        row = Table.read(phottable)
        row = row[np.flatnonzero(row["id"] == objid)[0]]
        njy = 1e-9 / 3631
        obs["maggies"] = np.array([row[b.split("_")[-1].upper()] for b in BANDS]) * njy
        obs["maggies_unc"] = (
            np.array([row["unc_" + b.split("_")[-1].upper()] for b in BANDS]) * njy
        )
        obs["phot_mask"] = np.isfinite(obs["maggies"])
    return obs


def build_sps(zcontinuous=1, **extras):
    """FSPS (needs $SPS_HOME); prospect-sbi uses BC03MilesBasis unless ``--sps param-file``."""
    from prospect.sources import CSPSpecBasis

    return CSPSpecBasis(zcontinuous=zcontinuous)


def build_noise(**extras):
    return None, None


def build_all(**kwargs):
    return (build_obs(**kwargs), build_model(**kwargs), build_sps(**kwargs), build_noise(**kwargs))


if __name__ == "__main__":
    from prospect.fitting import fit_model
    from prospect.io import write_results as writer

    parser = prospect_args.get_parser()
    parser.add_argument("--object_redshift", type=float, default=2.695)
    parser.add_argument("--phottable", default=None)
    args = parser.parse_args()
    run_params = vars(args)
    obs, model, sps, noise = build_all(**run_params)
    output = fit_model(obs, model, sps, noise, **run_params)
    writer.write_hdf5(
        f"{args.outfile}_result.h5",
        run_params,
        model,
        obs,
        output["sampling"][0],
        output["optimization"][0],
        tsample=output["sampling"][1],
        toptimize=output["optimization"][1],
    )
