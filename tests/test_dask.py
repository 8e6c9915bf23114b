"""The same sweep on a Dask cluster (loopback only): identical to the local sweep."""

from __future__ import annotations

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from test_sweep import BACKEND, GPU, MOE, moe_space  # noqa: E402

from pyengine.sweep import sweep, task_ranges  # noqa: E402


def cluster(processes: bool):
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                    host="127.0.0.1", protocol="tcp", dashboard_address=None,
                                    silence_logs=40)


def assert_same(a, b):
    assert a.counts == b.counts
    pd.testing.assert_frame_equal(a.front, b.front)
    pd.testing.assert_frame_equal(a.top, b.top)
    pd.testing.assert_frame_equal(a.sample, b.sample)


@pytest.mark.parametrize("processes", [False, True])
def test_dask_sweep_is_identical_to_local(processes):
    space = moe_space()
    constraints = {"max_dropped_fraction": 0.1, "mem_headroom": 0.9}
    local = sweep(MOE, GPU, space, backend=BACKEND, constraints=constraints, chunk_size=4096,
                  top_k=12, sample_size=200)
    seen = []
    with cluster(processes) as lc, distributed.Client(lc) as client:
        remote = sweep(MOE, GPU, space, backend=BACKEND, constraints=constraints,
                       chunk_size=64, top_k=12, sample_size=200, client=client,
                       progress=lambda done, total: seen.append((done, total)))
    assert_same(local, remote)
    assert remote.backend == f"dask:{BACKEND}"
    assert seen[-1] == (len(space), len(space)) and len(seen) > 1
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_task_ranges_cover_the_space_in_whole_chunks():
    ranges = list(task_ranges(0, 10_000, 64, 16))
    assert ranges[0][0] == 0 and ranges[-1][1] == 10_000
    assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:]))
    assert all((e - s) % 64 == 0 for s, e in ranges[:-1])
    assert 8 <= len(ranges) <= 16
    assert list(task_ranges(0, 0, 64, 4)) == []
    assert list(task_ranges(100, 300, 64, 2)) == [(100, 228), (228, 300)]
