"""``torchrun -m lteval rank``: the ranks share the backbones and rank 0 writes the
results files of a one-process run (gloo, 2 ranks, on CPU)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import CHEAP, short_config, write_h5_dir

from lteval.rank.distributed import Share

FILES = ("results.csv", "stages.csv", "per_class.csv")


def _rank(*args, ranks: int = 1, env=None):
    launch = [sys.executable, "-m", "lteval"]
    if ranks > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launch += [f"--nproc_per_node={ranks}", "-m", "lteval"]
    return subprocess.run([*launch, "rank", *args], capture_output=True, text=True, env=env)


def test_share_deals_backbones_round_robin():
    assert [i for i in range(7) if Share(1, 3).mine(i)] == [1, 4]
    assert [i for i in range(3) if Share(0, 1).mine(i)] == [0, 1, 2]
    assert Share(0, 2).root and not Share(1, 2).root


@pytest.mark.slow
def test_two_ranks_write_the_files_of_one_process(tmp_path):
    feats = write_h5_dir(tmp_path / "feats", names=("bb_a", "bb_b", "bb_c"))
    # torchrun gives each rank one thread: so does the one-process run compared with
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--features", str(feats), *CHEAP, "--config", str(short_config(tmp_path)), "--quiet"]
    one = _rank(*args, "--out", str(tmp_path / "one"), env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    args.remove("--quiet")  # each rank logs the backbones it scored
    two = _rank(*args, "--out", str(tmp_path / "two"), ranks=2, env=env)
    assert two.returncode == 0, two.stderr[-2000:]
    for i, name in enumerate(("bb_a", "bb_b", "bb_c"), 1):  # each scored by one rank only
        assert two.stderr.count(f"[{i}/3] {name}: separability") == 1, two.stderr[-3000:]
    for name in FILES:
        a, b = (tmp_path / "one" / name).read_bytes(), (tmp_path / "two" / name).read_bytes()
        assert a == b, name
    run = json.loads((tmp_path / "two" / "results.json").read_text())["run"]
    assert run["world_size"] == 2 and run["torch_threads"] == 1
    assert not (tmp_path / "two.new").exists()


def _merge_on_rank(rank: int, store: str, results, failing: bool) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    share = Share.current()
    error = ValueError("rank 1 could not read its features") if failing and rank == 1 else None
    got = {i: f"score {i}" for i in range(5) if share.mine(i)}
    try:
        results[rank] = ("ok", share.merge(got, 5, error))
    except ValueError as e:
        results[rank] = ("raised", str(e))
    dist.destroy_process_group()


def _merge_on_two_ranks(tmp_path, failing: bool) -> dict:
    """Each rank's outcome of ``Share.merge`` over 5 scores in a 2-rank gloo group."""
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_merge_on_rank, args=(str(tmp_path / "store"), results, failing), nprocs=2)
        return dict(results)


def test_an_error_on_one_rank_is_raised_on_rank_0_and_no_rank_waits(tmp_path):
    got = _merge_on_two_ranks(tmp_path, failing=True)
    assert got[0] == ("raised", "rank 1 could not read its features")
    assert got[1] == ("raised", "rank 1 could not read its features")


def test_rank_0_gets_every_score_in_list_order(tmp_path):
    got = _merge_on_two_ranks(tmp_path, failing=False)
    assert got[0] == ("ok", [f"score {i}" for i in range(5)]) and got[1] == ("ok", [])


def test_gather_runs_this_ranks_share_and_raises_its_error():
    calls = []

    def score(i):
        calls.append(i)
        return f"score {i}"

    assert Share().gather(3, score) == ["score 0", "score 1", "score 2"] and calls == [0, 1, 2]

    def broken(i):
        raise ValueError(f"backbone {i} unreadable")

    with pytest.raises(ValueError, match="backbone 0 unreadable"):
        Share().gather(2, broken)
