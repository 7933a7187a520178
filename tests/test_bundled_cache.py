"""scikit-learn's bundled datasets are read through it once, then from dlrun's cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets

from dlrun.data.bundled import cached_table
from dlrun.data.derived import cached_arrays

READ = (
    "import sys\n"
    "from dlrun.data.bundled import cached_table\n"
    "table = cached_table('wine', 'load_wine', True)\n"
    "print(table.x.shape, len(table.features), table.classes[2], 'sklearn' in sys.modules)"
)


def test_a_second_process_reads_the_cache_without_scikit_learn(tmp_path: Path) -> None:
    env = {"DLRUN_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    first, second = (
        subprocess.run([sys.executable, "-c", READ], capture_output=True, text=True, env=env)
        for _ in range(2)
    )
    assert first.stdout.split() == ["(178,", "13)", "13", "class_2", "True"], first.stderr
    assert second.stdout.split() == ["(178,", "13)", "13", "class_2", "False"], second.stderr


@pytest.mark.parametrize(("name", "classes"), [("iris", True), ("digits", True),
                                               ("breast_cancer", True), ("diabetes", False)])  # fmt: skip
def test_the_cached_table_equals_scikit_learn(name: str, classes: bool) -> None:
    loader = f"load_{name}"
    bunch = getattr(datasets, loader)()
    for table in (cached_table(name, loader, classes), cached_table(name, loader, classes)):
        np.testing.assert_array_equal(table.x, bunch.data.astype(np.float32))
        np.testing.assert_array_equal(table.y, bunch.target)
        assert table.features == [str(f) for f in bunch.feature_names]
        assert table.classes == ([str(c) for c in bunch.target_names] if classes else None)


def test_a_damaged_cache_file_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLRUN_CACHE", str(tmp_path))
    first = cached_table("iris", "load_iris", True)
    (cached,) = (tmp_path / "bundled").iterdir()
    whole = cached.read_bytes()
    for damage in (b"not a zip file", b"", whole[: len(whole) // 2]):
        cached.write_bytes(damage)
        again = cached_table("iris", "load_iris", True)
        np.testing.assert_array_equal(first.x, again.x)
        assert np.load(cached)["x"].shape == (150, 4)  # rewritten whole


def test_a_killed_writers_temporary_entry_is_removed_by_the_next_write(tmp_path: Path) -> None:
    entry = tmp_path / "derived.npz"
    stale, live = tmp_path / ".derived.npz.abc123.tmp", tmp_path / ".derived.npz.def456.tmp"
    other = tmp_path / ".other.npz.abc123.tmp"  # another entry's: not this write's to judge
    for temporary in (stale, live, other):
        temporary.write_bytes(b"half an entry")
    hour_ago = time.time() - 3600
    for temporary in (stale, other):
        os.utime(temporary, (hour_ago, hour_ago))
    arrays = cached_arrays(entry, ("x",), lambda: {"x": np.arange(3)})
    np.testing.assert_array_equal(arrays["x"], np.arange(3))
    assert not stale.exists()  # left by a writer killed long ago
    assert live.exists() and other.exists()  # maybe another run writing right now
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".derived.npz.def456.tmp", ".other.npz.abc123.tmp", "derived.npz"]
    )
