"""Training loop: validation split, early stopping, learning-rate schedule, checkpoints."""

from __future__ import annotations

__all__ = ["train", "DEFAULT_DERIVED", "COMPUTED", "MIN_RECALIBRATION_ROWS", "SCHEDULES"]

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from lampe.inference import NPELoss
from lampe.utils import GDStep
from tqdm.auto import tqdm

from ..noise import NoiseModel
from ..numeric import is_integer, is_number
from ..provenance import versions
from ..trainingset import TrainingSet
from .bounds import TargetSpace
from .checkpoint import Checkpoint
from .data import Examples, MassAugmentation
from .encoding import ObservationEncoder
from .estimator import AmortizedPosterior
from .heldout import held_out, recalibrate
from .network import FLOWS, PosteriorNetwork, brightness_config
from .recalibration import MIN_PER_BIN, N_SNR_BINS

#: Derived quantities learned with the free parameters by default (``t50`` when present).
DEFAULT_DERIVED = ("log_mstar", "log_sfr100", "mwa", "t50")
#: Quantities computed from two targets (``a - b``) rather than learned: learning them too
#: would make the joint density degenerate (they lie exactly on a plane).
COMPUTED = {"log_ssfr100": ("log_sfr100", "log_mstar")}
REDSHIFT_MODES = ("known", "infer")
#: Learning-rate schedules: ``plateau`` halves the rate when the validation loss stalls for
#: ``lr_patience`` epochs; ``cosine`` decays it from ``learning_rate`` to 1e-3 of it over
#: ``max_epochs`` (the run's length is then part of its configuration).
SCHEDULES = ("plateau", "cosine")
_ENCODER_ROWS = 200_000  # noisy draws used to fit the input standardisation
#: Validation rows needed for train(recalibrate=None) to fit recalibration maps: 1000 ranks in
#: each S/N bin; fewer give maps noisier than the errors they would correct.
MIN_RECALIBRATION_ROWS = 1000 * N_SNR_BINS


def train(
    trainingset: str | os.PathLike | TrainingSet,
    noise: NoiseModel,
    redshift: str = "known",
    *,
    derived: Sequence[str] | None = None,
    flow: str = "realnvp",
    network: dict[str, Any] | None = None,
    max_epochs: int = 300,
    batch_size: int = 512,
    learning_rate: float = 3e-3,
    patience: int = 15,
    lr_patience: int = 3,
    validation_fraction: float = 0.1,
    band_dropout: float = 0.2,
    jitter: float = 0.01,
    max_rows: int | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    init: str | os.PathLike | AmortizedPosterior | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    recalibrate: bool | None = None,
    augment_mass: bool = False,
    schedule: str = "plateau",
    transfer: bool = False,
) -> AmortizedPosterior:
    """Train an amortised posterior (neural posterior estimation) on a simulated training set.

    Every epoch, each training example gets a fresh noise draw from ``noise`` and random band
    dropout, so the estimator handles noise, non-detections and any subset of bands. Targets
    are the model's free parameters (theta labels) and ``derived`` quantities, jointly.

    Parameters
    ----------
    trainingset : path-like or TrainingSet
        Written by :func:`prospect_sbi.simulate`; read into memory.
    noise : NoiseModel
        Noise of the observations to analyse; restricted to the training set's bands.
    redshift : {"known", "infer"}
        ``"known"``: the estimator is conditioned on ``zred`` (an input; not a target).
        ``"infer"``: ``zred`` is a target (the model's ``zred`` must be free).
    derived : sequence of str, optional
        Derived quantities to learn; default :data:`DEFAULT_DERIVED` (those present).
        ``log_ssfr100`` is then computed from the draws (:data:`COMPUTED`).
    flow : str
        Flow family (:data:`prospect_sbi.posterior.network.FLOWS`); ``"realnvp"`` (affine
        coupling) is the fastest to sample, ``"nsf"`` (spline coupling) the most flexible.
    network : dict, optional
        Other :class:`PosteriorNetwork` arguments (``transforms``, ``hidden``, ``affine``,
        ``residual``, ...); ``"brightness": True`` fits a brightness shift of the mass-like
        targets (:func:`~prospect_sbi.posterior.network.brightness_config`) on the rows the
        input encoder is fitted on.
    max_epochs : int
        Total number of epochs, counting those of a resumed run.
    batch_size : int
        Examples per gradient step.
    learning_rate : float
        Initial Adam learning rate, halved when the validation loss stalls for
        ``lr_patience`` epochs.
    patience : int
        Stop after this many epochs without a better validation loss; the best weights are
        kept.
    lr_patience : int
        Epochs without a better validation loss before the learning rate is halved.
    validation_fraction : float
        Fraction of the rows held out for validation (fixed noise draw).
    band_dropout : float
        In half of the examples, each band is dropped with this probability.
    jitter : float
        Standard deviation (in units of each target's spread) of Gaussian noise added to the
        derived targets. Derived quantities are exact functions of the free parameters, so
        their joint density with them is degenerate; this small noise keeps it a density.
        It widens their posteriors a little (0.01 is about 0.025 dex in log M* and log SFR),
        but a smaller value makes the flow worse (see ``docs/posterior.md``).
    max_rows : int, optional
        Use only the first ``max_rows`` rows.
    seed : int
        Seed of the split, initial weights, noise draws and batches.
    checkpoint : path-like, optional
        File written atomically after every epoch; rerunning the same call resumes from it
        (after ``kill -9`` too). A checkpoint of another configuration is refused.
    init : path-like, pretrained name or AmortizedPosterior, optional
        Fine-tune this estimator instead of starting from random weights: its network,
        target normalisation and input standardisation are kept (``flow`` and ``network``
        are then ignored, except ``network={"affine": True}``, which adds the per-object
        affine transform, starting at the identity, to an estimator that has none), and epochs
        continue its count, so noise draws are new. It must
        come from the training set's model, bands, redshift mode and targets. Pass a lower
        ``learning_rate`` (e.g. 1e-4): Adam's moments start afresh.
    device : str or torch.device
        "cpu", "cuda", ... or "auto" (CUDA when available).
    progress : bool
        Show progress bars with train and validation losses.
    recalibrate : bool, optional
        After training, fit recalibration maps (:func:`~prospect_sbi.posterior.recalibrate`)
        on the validation rows, which no gradient step has seen, with a new noise draw and
        all bands. ``None`` (default): when the validation split holds at least
        :data:`MIN_RECALIBRATION_ROWS` rows; ``False``: keep the flow's own draws (e.g. to
        recalibrate later on other mocks). With ``init``, rows the initial estimator was
        trained on may be among the validation rows: fit the maps on other mocks then.

    augment_mass : bool
        Every epoch, give each training row a new formed mass drawn from its prior and scale
        its fluxes to match (:class:`~prospect_sbi.posterior.data.MassAugmentation`): exact
        for the mass priors uniform in log mass of the shipped models, and free.
    schedule : {"plateau", "cosine"}
        Learning-rate schedule (:data:`SCHEDULES`).
    transfer : bool
        With ``init``, accept an estimator of another model with the same free parameters
        (targets), bands and redshift mode: a wider prior or new physics (e.g. dust emission,
        a wider redshift range). Its weights, target normalisation and input standardisation
        start the training; the result describes this training set's model, and
        ``training["init"]["model_hash"]`` names the one it started from.

    Returns
    -------
    AmortizedPosterior
        With the best weights; ``posterior.training["history"]`` lists the epochs,
        ``posterior.recalibration`` holds the maps when they were fitted, and
        ``posterior.training["recalibration"]`` says whether and why not (a skip also warns).

    Raises
    ------
    ValueError
        Unknown ``redshift``, ``flow`` or ``schedule``; ``max_epochs``, ``batch_size``,
        ``patience`` or ``lr_patience`` not a positive (``lr_patience``: non-negative)
        integer, ``learning_rate`` not > 0, ``band_dropout`` outside [0, 1), ``jitter`` < 0;
        a noise model without the training set's bands;
        unknown derived quantities; ``redshift="infer"`` with a fixed redshift; a checkpoint
        from another configuration; ``recalibrate=True`` with fewer than 200 validation rows;
        a device this machine lacks; a training set with fluxes no galaxy has
        (:func:`~prospect_sbi.trainingset.check_photometry`).
    """
    if redshift not in REDSHIFT_MODES:
        raise ValueError(f"redshift={redshift!r}; use one of {REDSHIFT_MODES}")
    if flow not in FLOWS:
        raise ValueError(f"unknown flow {flow!r}; use one of {sorted(FLOWS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}; use one of {SCHEDULES}")
    _check_options(
        max_epochs=max_epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        patience=patience,
        lr_patience=lr_patience,
        band_dropout=band_dropout,
        jitter=jitter,
    )
    device = _device(device)
    with _opened(trainingset) as ts:
        setup = _Setup(
            ts,
            noise,
            redshift,
            derived,
            max_rows,
            validation_fraction,
            seed,
            init,
            augment_mass,
            bool((network or {}).get("affine")),
            transfer,
        )
    n_val = len(setup.val_rows)
    if recalibrate and n_val < N_SNR_BINS * MIN_PER_BIN:  # checked before the epochs
        raise ValueError(
            f"recalibrate=True needs >= {N_SNR_BINS * MIN_PER_BIN} validation rows "
            f"({N_SNR_BINS} S/N bins of {MIN_PER_BIN}); this split has "
            f"{n_val}"
        )
    if setup.start is None:
        arch = {"flow": flow, **(network or {})}
        if arch.get("brightness") is True:  # fitted on the encoder's rows
            arch["brightness"] = setup.brightness_config(seed)
        elif arch.get("brightness") is False:
            arch["brightness"] = None
        net = PosteriorNetwork(len(setup.space), setup.encoder.n_features, seed=seed, **arch)
        first_epoch = 0
    else:
        net, first_epoch = setup.start
    net.to(device)
    config = setup.describe() | {
        "network": net.config,
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "band_dropout": float(band_dropout),
        "jitter": float(jitter),
        "lr_patience": int(lr_patience),
        "seed": int(seed),
    }
    # only when not the default, so checkpoints written before these options still resume
    if augment_mass:
        config["augment_mass"] = True
    if schedule == "cosine":
        config |= {"schedule": schedule, "max_epochs": int(max_epochs)}
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(int(max_epochs), 1), eta_min=1e-3 * learning_rate
        )
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=lr_patience, min_lr=1e-6
        )
    state = Checkpoint(checkpoint, config)
    state.restore(net, optimizer, scheduler)
    loop = _Loop(
        setup,
        net,
        optimizer,
        scheduler,
        state,
        device,
        batch_size,
        band_dropout,
        jitter,
        seed,
        first_epoch,
    )
    loop.run(max_epochs, patience, progress)
    net.load_state_dict(state.best_weights or net.state_dict())
    post = setup.posterior(net, config, state)
    if recalibrate or (recalibrate is None and n_val >= MIN_RECALIBRATION_ROWS):
        _recalibrate_on_validation(post, trainingset, setup.val_rows, seed, progress)
        post.training["recalibration"] = f"fitted on the {n_val} validation rows"
    elif recalibrate is None:
        note = (
            f"skipped: {n_val} validation rows, fewer than MIN_RECALIBRATION_ROWS "
            f"({MIN_RECALIBRATION_ROWS}); fit maps with recalibrate() or prospect-sbi "
            "recalibrate"
        )
        post.training["recalibration"] = note
        warnings.warn(f"recalibration {note}", UserWarning, stacklevel=2)
    else:
        post.training["recalibration"] = "off (recalibrate=False)"
    return post.to("cpu")


def _device(device: str | torch.device) -> torch.device:
    """Resolve ``device`` ("auto": CUDA when available); refuse one this machine lacks."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device {device!r} is not a torch device: cpu, cuda, cuda:1, auto, ..."
        ) from None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= count:
        raise ValueError(
            f"device {device} is not on this machine ({count} CUDA devices); use 'cpu' or 'auto'"
        )
    return device


@contextmanager
def _opened(trainingset: str | os.PathLike | TrainingSet) -> Iterator[TrainingSet]:
    """Yield the training set; one given as a path is opened here and closed after."""
    if isinstance(trainingset, TrainingSet):
        yield trainingset
    else:
        with TrainingSet.open(trainingset) as ts:
            yield ts


def _recalibrate_on_validation(
    estimator: AmortizedPosterior,
    trainingset: str | os.PathLike | TrainingSet,
    rows: np.ndarray,
    seed: int,
    progress: bool,
) -> None:
    """Fit ``estimator``'s recalibration maps on the validation ``rows`` of the set, in place."""
    noise_seed = [int(seed), 4]  # the split, encoder, validation and epochs use [seed, 0-3]
    with _opened(trainingset) as ts:
        mocks = held_out(estimator, ts, rows, seed=noise_seed)
    info = {
        "mocks": f"the {len(rows)} validation rows of the training set (seed {seed}), "
        f"noise drawn with default_rng({noise_seed})"
    }
    recalibrate(
        estimator,
        mocks["flux"],
        mocks["err"],
        mocks["truth"],
        mocks["zred"],
        seed=seed,
        info=info,
        progress=progress,
    )


def _check_options(**values: Any) -> None:
    """Raise a one-line ValueError for the first of train()'s numeric options out of range."""
    rules = {
        "max_epochs": ("an integer >= 1", lambda v: is_integer(v) and v >= 1),
        "batch_size": ("an integer >= 1", lambda v: is_integer(v) and v >= 1),
        "patience": ("an integer >= 1", lambda v: is_integer(v) and v >= 1),
        "lr_patience": ("an integer >= 0", lambda v: is_integer(v) and v >= 0),
        "learning_rate": ("a number > 0", lambda v: is_number(v) and v > 0),
        "band_dropout": ("a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1),
        "jitter": ("a number >= 0", lambda v: is_number(v) and v >= 0),
    }
    for name, value in values.items():
        need, ok = rules[name]
        if not ok(value):
            raise ValueError(f"{name}={value!r}; it must be {need}")


class _Setup:
    """Everything fixed before the first epoch: targets, split, encoder, validation inputs."""

    def __init__(
        self,
        ts: TrainingSet,
        noise: NoiseModel,
        redshift: str,
        derived: Sequence[str] | None,
        max_rows: int | None,
        validation_fraction: float,
        seed: int,
        init: str | os.PathLike | AmortizedPosterior | None = None,
        augment_mass: bool = False,
        add_affine: bool = False,
        transfer: bool = False,
    ) -> None:
        self.ts_info = {
            "path": str(ts.path),
            "rows": len(ts),
            "model_hash": ts.model_hash,
            "seed": ts.provenance.get("seed"),
        }
        self.filters, self.spec = list(ts.filters), ts.provenance["model_spec"]
        self.redshift = redshift
        self.init: dict[str, Any] | None = None
        self.noise = _select_noise(noise, ts.filters)
        labels = [name for name in ts.labels if name != "zred"]
        if redshift == "infer":
            if "zred" not in ts.labels:
                raise ValueError(
                    "redshift='infer' needs a model with a free zred; this "
                    "training set has a fixed redshift"
                )
            labels = ["zred", *labels]
        wanted = [d for d in DEFAULT_DERIVED if d in ts.derived] if derived is None else derived
        self.computed = {
            k: list(v)
            for k, v in COMPUTED.items()
            if set(v) <= set(wanted) and (derived is None or k in derived)
        }
        learned = [d for d in wanted if d not in self.computed]
        unknown = [d for d in learned if d not in ts.derived]
        if unknown:
            raise ValueError(
                f"unknown derived quantities {unknown}; the training set has {sorted(ts.derived)}"
            )
        self.n_derived = len(learned)
        self.data = Examples.load(ts, labels + learned, max_rows)
        n = len(self.data)
        if not 0 < validation_fraction < 1 or n < 10:
            raise ValueError(
                f"need >= 10 rows and 0 < validation_fraction < 1; got {n} rows, "
                f"{validation_fraction}"
            )
        order = np.random.default_rng([seed, 0]).permutation(n)
        n_val = max(1, int(round(validation_fraction * n)))
        self.val_rows, self.train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
        self.space = TargetSpace.from_model_spec(self.spec, labels, learned)
        #: (network, epochs already trained) of the estimator to fine-tune, or None
        self.start = None if init is None else self._adopt(init, add_affine, transfer)
        self.augment = MassAugmentation(self.space.names, self.spec) if augment_mass else None
        if self.start is None:
            self.space.fit(self.data.theta[self.train_rows])
            self.encoder = ObservationEncoder(
                self.noise.bands,
                self.noise.depth,
                self.noise.limit_sigma,
                known_zred=redshift == "known",
            )
            fit_rows = self.train_rows[:_ENCODER_ROWS]
            flux, err = self.data.noisy(fit_rows, self.noise, np.random.default_rng([seed, 1]))
            self.encoder.fit(flux, err, self.data.zred[fit_rows])
        phot = self.data.photometry[self.train_rows]
        p01, p99 = np.percentile(phot[phot > 0], [0.1, 99])
        self.flux_stats = {"p0.1": float(p01), "p99": float(p99), "max": float(phot.max())}
        zred = self.data.zred
        self.zred_range = [float(zred.min()), float(zred.max())] if redshift == "known" else None

    def _adopt(
        self,
        init: str | os.PathLike | AmortizedPosterior,
        add_affine: bool = False,
        transfer: bool = False,
    ) -> tuple[PosteriorNetwork, int]:
        """Take the network, normalisation and encoder of the estimator to fine-tune.

        Returns a copy of its network (with a per-object affine transform added when
        ``add_affine`` and it has none) and the number of epochs it was trained for; the
        normalisation and encoder are not refitted. With ``transfer``, its model may differ.
        """
        post = AmortizedPosterior.resolve(init)
        wanted = {
            "model": self.ts_info["model_hash"],
            "bands": self.filters,
            "redshift": self.redshift,
            "targets": self.space.names,
        }
        found = {
            "model": post.model_hash,
            "bands": post.filters,
            "redshift": post.redshift,
            "targets": post.space.names,
        }
        bad = [k for k in wanted if wanted[k] != found[k] and not (transfer and k == "model")]
        if bad:
            raise ValueError(
                f"init estimator differs from this training in {', '.join(bad)}: "
                + "; ".join(f"{k} {found[k]} vs {wanted[k]}" for k in bad)
            )
        self.space, self.encoder = post.space, post.encoder
        history = post.training.get("history", [])
        first = len(history) + int(post.training.get("init", {}).get("epochs", 0))
        self.init = {
            "epochs": first,
            "best_val_loss": post.training.get("best_val_loss"),
            "recipe": post.training.get("recipe"),
            "trainingset": post.training.get("trainingset"),
            "model_hash": post.model_hash,
        }
        net = PosteriorNetwork.from_config(post.network.config)
        net.load_state_dict(post.network.state_dict())
        if add_affine and not net.config.get("affine"):
            net = net.with_affine()
            self.init["added"] = "affine"
        return net, first

    def brightness_config(self, seed: int) -> dict[str, Any]:
        """Fit a brightness shift (``network={"brightness": True}``) on the encoder's rows."""
        rows = self.train_rows[:_ENCODER_ROWS]
        flux, err = self.data.noisy(rows, self.noise, np.random.default_rng([seed, 1]))
        x = self.encoder.encode(flux, err, self.data.zred[rows])
        return brightness_config(self.encoder, self.space, x, self.data.theta[rows])

    def describe(self) -> dict[str, Any]:
        """Describe what a checkpoint must match: data, targets and split (not the path)."""
        data = {k: v for k, v in self.ts_info.items() if k != "path"}
        return {
            "trainingset": data,
            "rows": len(self.data),
            "redshift": self.redshift,
            "targets": self.space.names,
            "computed": self.computed,
            "noise": self.noise.to_dict(),
            "n_val": len(self.val_rows),
            "init": self.init,
        }

    def posterior(
        self, net: PosteriorNetwork, config: dict, state: Checkpoint
    ) -> AmortizedPosterior:
        training = {
            k: config[k]
            for k in (
                "batch_size",
                "learning_rate",
                "band_dropout",
                "jitter",
                "lr_patience",
                "seed",
            )
        }
        training |= {
            "augment_mass": bool(config.get("augment_mass", False)),
            "schedule": config.get("schedule", "plateau"),
        }
        training |= {
            "trainingset": self.ts_info,
            "rows": len(self.data),
            "n_train": len(self.train_rows),
            "n_val": len(self.val_rows),
            "history": state.history,
            "best_epoch": state.best_epoch,
            "best_val_loss": state.best_val,
            "resumed_at_epoch": state.resumed_at,
            "stopped_early": state.stopped,
        }
        if self.init is not None:
            training["init"] = self.init
        header = {
            "filters": self.filters,
            "noise": self.noise.to_dict(),
            "model_spec": self.spec,
            "model_hash": self.ts_info["model_hash"],
            "redshift": self.redshift,
            "zred_range": self.zred_range,
            "flux_stats": self.flux_stats,
            "computed": self.computed,
            "training": training,
            "versions": versions(),
        }
        return AmortizedPosterior(net, self.space, self.encoder, header)


class _Loop:
    """Epochs: fresh noise and dropout, shuffled batches, validation, schedule, checkpoint."""

    def __init__(
        self,
        setup: _Setup,
        net: PosteriorNetwork,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        state: Checkpoint,
        device: torch.device,
        batch_size: int,
        dropout: float,
        jitter: float,
        seed: int,
        first_epoch: int = 0,
    ) -> None:
        self.first_epoch = int(first_epoch)
        self.setup, self.net, self.optimizer, self.scheduler = setup, net, optimizer, scheduler
        self.state, self.device, self.batch_size = state, device, int(batch_size)
        self.dropout, self.jitter, self.seed = float(dropout), float(jitter), int(seed)
        z = setup.space.to_flow(torch.from_numpy(setup.data.theta)).float()
        self.z_train, z_val = z[setup.train_rows], z[setup.val_rows]
        self.z_val = self._jittered(z_val, torch.Generator().manual_seed(seed)).to(device)
        rng = np.random.default_rng([seed, 2])
        self.x_val = setup.data.inputs(
            setup.val_rows, setup.noise, setup.encoder, rng, self.dropout
        ).to(device)
        self.loss = NPELoss(net)
        self.step = GDStep(optimizer, clip=5.0)

    def _jittered(self, z: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        k = self.setup.n_derived
        if k == 0 or self.jitter == 0:
            return z
        z = z.clone()
        z[:, -k:] += self.jitter * torch.randn(len(z), k, generator=gen)
        return z

    def run(self, max_epochs: int, patience: int, progress: bool) -> None:
        state = self.state
        bar = tqdm(total=max_epochs, initial=state.epoch, unit="epoch", disable=not progress)
        with bar:
            while state.epoch < max_epochs and not state.stopped:
                start = time.perf_counter()
                train_loss = self._epoch(state.epoch, progress)
                val_loss = self._validate()
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(val_loss)
                else:
                    self.scheduler.step()
                state.record(
                    self.net,
                    train_loss,
                    val_loss,
                    self.optimizer.param_groups[0]["lr"],
                    time.perf_counter() - start,
                    patience,
                )
                state.save(self.net, self.optimizer, self.scheduler)
                bar.update(1)
                bar.set_postfix(
                    train=f"{train_loss:.3f}", val=f"{val_loss:.3f}", best=f"{state.best_val:.3f}"
                )

    def _epoch(self, epoch: int, progress: bool) -> float:
        setup = self.setup
        rng = np.random.default_rng([self.seed, 3, self.first_epoch + epoch])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        if setup.augment is None:
            x = setup.data.inputs(setup.train_rows, setup.noise, setup.encoder, rng, self.dropout)
            z = self.z_train
        else:
            theta, factor = setup.augment.draw(setup.data.theta[setup.train_rows], rng)
            z = setup.space.to_flow(torch.from_numpy(theta)).float()
            x = setup.data.inputs(
                setup.train_rows, setup.noise, setup.encoder, rng, self.dropout, factor
            )
        z = self._jittered(z, gen)
        order = torch.randperm(len(z), generator=gen)
        x, z, order = x.to(self.device), z.to(self.device), order.to(self.device)
        self.net.train()
        total, count = 0.0, 0
        batches = range(0, len(z), self.batch_size)
        for i in tqdm(batches, leave=False, unit="batch", disable=not progress):
            rows = order[i : i + self.batch_size]
            loss = self.step(self.loss(z[rows], x[rows]))
            if torch.isfinite(loss):
                total, count = total + float(loss) * len(rows), count + len(rows)
        self.net.eval()
        return total / max(count, 1)

    @torch.no_grad()
    def _validate(self) -> float:
        losses = [
            self.loss(self.z_val[i : i + 4096], self.x_val[i : i + 4096])
            * len(self.z_val[i : i + 4096])
            for i in range(0, len(self.z_val), 4096)
        ]
        return float(torch.stack(losses).sum() / len(self.z_val))


def _select_noise(noise: NoiseModel, filters: Sequence[str]) -> NoiseModel:
    try:
        return noise.select(filters)
    except ValueError as exc:
        raise ValueError(
            f"the noise model does not cover the training set's bands ({exc}); "
            f"training set bands: {', '.join(filters)}"
        ) from None
