"""Runtime artifact costs: a table artifact through store/fetch (Parquet + sha256 + LocalStorage)
against a plain pickle round trip of the same frame, a model-sized dir through the deterministic
tar, and artifact-registry updates from concurrent processes (CAS) against blind overwrites.

"py-heap peak" is the Python allocator peak (tracemalloc); Arrow's C++ buffers are not in it.

Run: .venv/bin/python benchmarks/bench_runtime_artifacts.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
import tracemalloc
from pathlib import Path


def _frame(rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "customer_id": [f"CUST_{i:07d}" for i in range(rows)],
        "tenure": rng.integers(0, 72, rows),
        "monthly_charges": rng.uniform(20, 120, rows).round(2),
        "total_charges": np.where(rng.random(rows) < 0.02, np.nan, rng.uniform(20, 8000, rows)),
        "contract_type": pd.Categorical(rng.choice(["month-to-month", "one_year", "two_year"], rows)),
        "churned": rng.integers(0, 2, rows),
    })


def _timed(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def bench_table(rows: int, tmp: Path) -> None:
    import pandas as pd

    from airflow_mbt.plugins.storage.local import LocalStorage
    from airflow_mbt.runtime import artifacts

    df = _frame(rows)
    storage = LocalStorage({"base_path": str(tmp / "store")})
    entry, s_store, m_store = _timed(lambda: artifacts.store(storage, "run_b", "load_data", "raw_data",
                                                              "table", df, tmp))
    back, s_fetch, m_fetch = _timed(lambda: artifacts.fetch(storage, "raw_data", entry, tmp / "f"))
    assert back.equals(df)
    pkl = tmp / "baseline.pkl"
    _, s_pdump, m_pdump = _timed(lambda: df.to_pickle(pkl))
    _, s_pload, m_pload = _timed(lambda: pd.read_pickle(pkl))
    mb = 1 << 20
    print(f"table {rows:,} rows x {df.shape[1]} cols (in memory {df.memory_usage(deep=True).sum() / mb:.0f} MiB)")
    print(f"  mbt store  (parquet+sha256+put_file): {s_store:6.2f} s  py-heap peak {m_store / mb:6.0f} MiB  "
          f"file {entry['size'] / mb:6.1f} MiB")
    print(f"  mbt fetch  (get_file+verify+read)   : {s_fetch:6.2f} s  py-heap peak {m_fetch / mb:6.0f} MiB")
    print(f"  baseline pickle dump                : {s_pdump:6.2f} s  py-heap peak {m_pdump / mb:6.0f} MiB  "
          f"file {pkl.stat().st_size / mb:6.1f} MiB")
    print(f"  baseline pickle load                : {s_pload:6.2f} s  py-heap peak {m_pload / mb:6.0f} MiB")


def bench_dir(tmp: Path) -> None:
    import shutil

    from airflow_mbt.runtime.artifacts import deserialize, serialize

    model = tmp / "model"
    model.mkdir()
    for i in range(20):
        (model / f"part_{i:02d}.bin").write_bytes(os.urandom(5 << 20))
    _, s_tar, _ = _timed(lambda: serialize("model", "dir", model, tmp / "model.tar"))
    _, s_untar, _ = _timed(lambda: deserialize("model", "dir", tmp / "model.tar", tmp / "out"))
    _, s_copy, _ = _timed(lambda: shutil.copytree(model, tmp / "copy"))
    print(f"dir 100 MiB (20 files): tar {s_tar:.2f} s, untar {s_untar:.2f} s; baseline copytree {s_copy:.2f} s")


def _writer(base: str, tag: str, count: int, blind: bool, barrier) -> None:
    from airflow_mbt.plugins.storage.local import LocalStorage
    from airflow_mbt import _fs as files
    from airflow_mbt.runtime.artifact_registry import ArtifactRegistry

    storage = LocalStorage({"base_path": base})
    if blind:  # baseline: read-merge-write without the compare-and-swap
        storage.write_conditional = lambda key, data, v: files.atomic_write_bytes(storage._path(key), data)
    reg = ArtifactRegistry(storage, "run_c")
    barrier.wait()
    for i in range(count):
        reg.record({f"{tag}_{i}": {"uri": "u", "key": "k", "kind": "json", "sha256": "0", "size": 0, "step": tag}})


def bench_registry(tmp: Path, procs: int = 4, count: int = 50) -> None:
    from airflow_mbt.plugins.storage.local import LocalStorage
    from airflow_mbt.runtime.artifact_registry import ArtifactRegistry

    ctx = multiprocessing.get_context("fork")
    for blind in (False, True):
        base = str(tmp / ("blind" if blind else "cas"))
        barrier = ctx.Barrier(procs)
        workers = [ctx.Process(target=_writer, args=(base, f"p{n}", count, blind, barrier)) for n in range(procs)]
        t0 = time.perf_counter()
        [w.start() for w in workers]
        [w.join() for w in workers]
        seconds = time.perf_counter() - t0
        kept = len(ArtifactRegistry(LocalStorage({"base_path": base}), "run_c").load())
        label = "blind overwrite (baseline)" if blind else "CAS record"
        print(f"registry {procs} processes x {count} records, {label:27s}: {seconds:5.2f} s, "
              f"{kept}/{procs * count} entries kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mbt-bench-") as tmp:
        bench_table(args.rows, Path(tmp))
        bench_dir(Path(tmp))
        bench_registry(Path(tmp))


if __name__ == "__main__":
    main()
