"""The job engine of ``prospect_sbi._io``: chunks, seeds, parts folders, the ordered runner,
atomic figures and tables."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

from prospect_sbi._io import (
    DASK_TRIM_SETTING,
    ChunkStore,
    chunk_seed,
    chunk_sequence,
    chunk_slices,
    dask_client,
    parts_folder,
    row_seed,
    run_ordered,
    save_figure,
    write_table,
)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_figures_and_tables_are_written_whole_with_the_umask(tmp_path, mask):
    """Figures and tables that people open (validate's report, compare's table) were written
    in place: a killed run left half a file under the final name."""
    from astropy.table import Table
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    before = os.umask(mask)
    try:
        png = save_figure(fig, tmp_path / "a.png", dpi=50)
        ecsv = write_table(tmp_path / "a.ecsv", Table({"x": [1.5, 2.5]}))
    finally:
        os.umask(before)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(Table.read(ecsv)["x"]) == [1.5, 2.5]
    for path in (png, ecsv):
        assert oct(stat.S_IMODE(path.stat().st_mode)) == oct(0o666 & ~mask), path
    old = png.read_bytes()
    broken = Figure()
    broken.text(0.5, 0.5, r"$\frac{$")  # raises while the PNG is being drawn
    with pytest.raises(ValueError, match="frac"):
        save_figure(broken, png)
    assert png.read_bytes() == old  # the previous figure, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ecsv", "a.png"]  # no temporary
    with pytest.raises(FileExistsError, match="a.ecsv exists; pass overwrite=True"):
        write_table(ecsv, Table({"x": [1.0]}))
    with pytest.raises(ValueError, match=r"table suffix '.txt'; use one of"):
        write_table(tmp_path / "a.txt", Table({"x": [1.0]}))


@pytest.mark.parametrize(("n", "size"), [(1, 1), (10, 3), (9, 3), (5, 1024), (1025, 1024)])
def test_chunk_slices_are_the_old_chunks(n, size):
    old = [slice(start, min(start + size, n)) for start in range(0, n, size)]
    assert chunk_slices(n, size) == old
    assert sum(s.stop - s.start for s in chunk_slices(n, size)) == n
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1; got 0"):
        chunk_slices(n, 0)


def test_chunk_seeds_are_the_old_formulas():
    for seed, c in [(0, 0), (4, 1), (123, 77)]:
        old = int(np.random.SeedSequence(seed, spawn_key=(c,)).generate_state(1)[0])
        assert chunk_seed(seed, c) == old
        old_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(c,)))
        new_rng = np.random.default_rng(chunk_sequence(seed, c))
        np.testing.assert_array_equal(old_rng.uniform(size=5), new_rng.uniform(size=5))
    assert chunk_seed(0, 1) == 673228719  # pinned: the pixel fits' seeds must not move
    assert row_seed(3, slice(10, 20)) == 13  # catalogue fits: seed plus the chunk's first row
    assert len({chunk_seed(0, c) for c in range(100)}) == 100


def test_parts_folder_resumes_and_refuses_another_fingerprint(tmp_path):
    folder = parts_folder(tmp_path / "job.h5")
    assert folder == tmp_path / "job.h5.parts"
    store = ChunkStore(
        folder, {"seed": 0, "n": 5}, ".npz", name="chunk_{:07d}", extra={"chunk_rows": 7}
    )
    store.save(0, x=np.arange(3))
    store.save(2, x=np.arange(2))
    assert store.path(2).name == "chunk_0000002.npz"
    again = ChunkStore(
        folder, {"n": 5, "seed": 0}, ".npz", name="chunk_{:07d}", extra={"chunk_rows": 99}
    )
    assert [c in again for c in range(3)] == [True, False, True]
    assert again.manifest["chunk_rows"] == 7  # a resumed job keeps the manifest's entries
    np.testing.assert_array_equal(np.load(again.path(0))["x"], [0, 1, 2])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["inputs"] == {"n": 5, "seed": 0}
    with pytest.raises(ValueError, match="holds an unfinished run with other inputs"):
        ChunkStore(folder, {"seed": 1, "n": 5}, ".npz", name="chunk_{:07d}")
    assert 0 in again  # refused, nothing removed
    seen = []
    fresh = ChunkStore(
        folder, {"seed": 1, "n": 5}, ".npz", name="chunk_{:07d}", on_mismatch=seen.append
    )  # the caller chose to start again
    assert seen[0]["inputs"] == {"n": 5, "seed": 0}
    assert 0 not in fresh and 2 not in fresh and fresh.manifest["inputs"]["seed"] == 1
    scratch = ChunkStore(tmp_path / "scratch", None, ".txt")
    scratch.write(1, lambda tmp: tmp.write_text("one"))
    assert [p.name for p in (tmp_path / "scratch").iterdir()] == ["part000001.txt"]
    fresh.remove()
    assert not folder.exists()


def _slow_square(delay: float, x: int) -> int:
    time.sleep(delay * (5 - x) / 5)  # the first items finish last
    return x * x


@pytest.mark.parametrize("kind", ["serial", "threads", "processes", "spawned"])
def test_run_ordered_keeps_order(kind):
    items = [(f"k{x}", (x,)) for x in range(6)]
    if kind == "threads":
        with ThreadPoolExecutor(2) as pool:
            out = list(run_ordered(_slow_square, items, pool, shared=(0.05,)))
    elif kind == "processes":  # a builtin: picklable whatever the start method
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            out = [(k, v) for k, v in run_ordered(pow, items, pool, shared=(2,))]
        assert out == [(f"k{x}", 2**x) for x in range(6)]
        return
    elif kind == "spawned":
        out = list(run_ordered(pow, [(k, (x, 2)) for k, (x,) in items], 2))
    else:
        out = list(run_ordered(_slow_square, items, None, shared=(0.0,)))
    assert out == [(f"k{x}", x * x) for x in range(6)]


def test_run_ordered_refuses_an_executor_of_another_kind():
    """A scheduler's address passed as the client was an AttributeError traceback."""
    with pytest.raises(ValueError, match=r"^the executor \(client=, executor=\) must be None, "):
        list(run_ordered(pow, [(0, (2, 3))], "tcp://127.0.0.1:8786"))


def test_run_ordered_bounds_the_tasks_in_flight():
    pulled = []

    def items():
        for x in range(10):
            pulled.append(x)
            yield x, (x,)

    with ThreadPoolExecutor(2) as pool:
        run = run_ordered(_slow_square, items(), pool, shared=(0.0,), width=3)
        assert next(run) == (0, 0)
        assert len(pulled) == 3  # no more than `width` submitted before the first result
        assert [k for k, _ in run] == list(range(1, 10))


def test_run_ordered_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        offset = np.array([10, 20])  # scattered once; None and booleans passed as they are
        out = list(
            run_ordered(
                _add,
                [(x, (x,)) for x in range(8)],
                client,
                shared=(offset, None, True, {"scale": 2}),
            )
        )
    assert out == [(x, 30 + 2 * x) for x in range(8)]
    assert dask_client(0, None) is None


def test_local_dask_workers_keep_glibc_adaptive_malloc(monkeypatch):
    """dask sets MALLOC_TRIM_THRESHOLD_ in every worker it spawns, which turns glibc's adaptive
    mmap threshold off: the refinement of 1188 rows took 89 s on 2 workers, 60 s in one
    process. The workers of --workers N start without it (45 s)."""
    pytest.importorskip("distributed")
    import dask

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    before, environ = dask.config.get(DASK_TRIM_SETTING), dict(os.environ)
    from distributed import LocalCluster

    client = dask_client(1, None)
    default = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None)
    try:
        # os.getenv, not os.environ.get: that bound method pickles this process's environment
        seen = client.run(os.getenv, "MALLOC_TRIM_THRESHOLD_")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # --scheduler to workers without it: no warning
            dask_client(0, client.scheduler.address).close()
        # --scheduler to a cluster started with dask's defaults (the user's): said once
        with pytest.warns(UserWarning, match=r"^1 of the 1 workers at tcp://.* run with "):
            dask_client(0, default.scheduler_address).close()
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
        default.close()
        os.environ.clear()  # dask's nanny sets OMP_NUM_THREADS... here too: not for later tests
        os.environ.update(environ)
    assert list(seen.values()) == [None]
    assert before is not None and dask.config.get(DASK_TRIM_SETTING) == before  # left as it was


def _add(offset: np.ndarray, nothing: None, flag: bool, options: dict, x: int) -> int:
    assert nothing is None and flag is True
    time.sleep(0.02 * (8 - x) / 8)
    return int(offset.sum()) + options["scale"] * x


def test_job_functions_take_the_estimator_as_object_or_file(tiny_estimator_file, tmp_path):
    from astropy.table import Table

    from prospect_sbi import read_catalog
    from prospect_sbi.fitting import check_catalog, fit_catalog, write_catalog_fit
    from prospect_sbi.pixels import PixelImages, fit_pixels
    from prospect_sbi.posterior import AmortizedPosterior

    post = AmortizedPosterior.load(tiny_estimator_file)
    rng = np.random.default_rng(1)
    n_bands = len(post.filters)
    flux = 100.0 * np.exp(rng.normal(0, 0.3, (n_bands, 3, 4)))  # nJy
    images = PixelImages(
        flux * 1e-9 / 3631, 0.1 * flux * 1e-9 / 3631, list(post.filters), zred=2.0
    )
    kw = {"n_draws": 20, "model": False, "chunk_size": 5, "seed": 3, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_object = fit_pixels(post, images, np.ones((3, 4), bool), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_file = fit_pixels(
            estimator=str(tiny_estimator_file), images=images, mask=np.ones((3, 4), bool), **kw
        )
    np.testing.assert_array_equal(by_object.quantiles, by_file.quantiles)
    table = Table({"id": np.arange(12), "z": np.full(12, 2.0)})
    for j, band in enumerate(post.filters):
        table[f"f_{band}"], table[f"e_{band}"] = flux[j].ravel(), 0.1 * flux[j].ravel()
    cat = read_catalog(
        table,
        post.filters,
        unit="nJy",
        flux_format="f_{band}",
        err_format="e_{band}",
        zred_column="z",
        id_column="id",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = check_catalog(estimator=tiny_estimator_file, catalog=cat)
    assert obs.flux.shape == (12, n_bands)
    opts = {
        "draws": 20,
        "seed": 2,
        "chunk_size": 5,
        "model": False,
        "refine": "never",
        "progress": False,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = fit_catalog(tiny_estimator_file, cat, **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = write_catalog_fit(
            estimator=tiny_estimator_file,
            catalog=cat,
            out=tmp_path / "fit.ecsv",
            fingerprint={"x": 1},
            **opts,
        )
    assert counts["rows"] == 12
    disk = Table.read(tmp_path / "fit.ecsv")
    np.testing.assert_array_equal(disk["log_mstar_p50"], mem["log_mstar_p50"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_draws'"):
        write_catalog_fit(post, cat, tmp_path / "x.ecsv", {}, n_draws=3)
    bad = {**opts, "chunk_size": 2.5}  # refused before any file: it was truncated to 2
    with pytest.raises(ValueError, match=r"^chunk_size must be an integer >= 1; got 2\.5$"):
        write_catalog_fit(post, cat, tmp_path / "y.ecsv", {"x": 1}, **bad)
    assert not list(tmp_path.glob("y*"))
