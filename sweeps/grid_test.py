"""grid.py: sweep files checked against params.yaml, DVC's expansion of the grid, tags, the CI matrix, threads."""

from pathlib import Path

import pytest

from sweeps.grid import (
    THREAD_VARIABLES,
    SweepError,
    matrix,
    parse_sweep,
    points,
    read_sweep,
    sweep_file_for_tag,
    worker_env,
)

pytestmark = pytest.mark.unittest

PARAMS = {
    "seed": 42,
    "train_dnn_pytorch": {"lr": 0.001, "batch_size": 32, "hidden_layers": [32, 16], "device": "auto"},
    "prepare_data": {"scale": True, "source": "sklearn:breast_cancer"},
}
GRID = ["train_dnn_pytorch.lr=0.001,0.01", "train_dnn_pytorch.batch_size=32,64"]


def sweep_of(**data: object) -> object:
    return parse_sweep({"metric": "dnn/val/roc_auc", "params": GRID, **data}, "s.yaml", "s")


def test_the_grid_is_dvcs_product_in_file_order_named_after_the_prefix() -> None:
    grid = points(sweep_of(name="lr"), PARAMS)

    assert [point.name for point in grid] == ["lr-1", "lr-2", "lr-3", "lr-4"]  # as dvc exp run --queue names them
    assert [point.params for point in grid] == [
        {"train_dnn_pytorch.lr": "0.001", "train_dnn_pytorch.batch_size": "32"},
        {"train_dnn_pytorch.lr": "0.001", "train_dnn_pytorch.batch_size": "64"},
        {"train_dnn_pytorch.lr": "0.01", "train_dnn_pytorch.batch_size": "32"},
        {"train_dnn_pytorch.lr": "0.01", "train_dnn_pytorch.batch_size": "64"},
    ]
    assert grid[1].overrides == ["train_dnn_pytorch.lr=0.001", "train_dnn_pytorch.batch_size=64"]
    assert grid[1].label() == "lr=0.001 batch_size=64"
    assert [point.name for point in points(sweep_of(), PARAMS, prefix="sweep-x")][:1] == ["sweep-x-1"]


def test_defaults_the_file_stem_as_name_and_max_as_order() -> None:
    sweep = sweep_of()

    assert (sweep.name, sweep.metric, sweep.maximize) == ("s", "dnn/val/roc_auc", True)
    assert sweep_of(order="min").maximize is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"params": ["train_dnn_pytorch.lrr=1.0"]}, "s.yaml: params: train_dnn_pytorch.lrr: unknown key"),
        ({"params": ["nope=1,2"]}, "s.yaml: params: nope: unknown key (not in params.yaml)"),
        ({"params": ["train_dnn_pytorch=1"]}, "params: train_dnn_pytorch: set one key of params.yaml to a value"),
        ({"params": ["+train_dnn_pytorch.lr=1.0"]}, "params: train_dnn_pytorch.lr: set one key of params.yaml"),
        ({"params": ["train_dnn_pytorch.lr=fast"]}, "'fast' is text, params.yaml holds number (0.001)"),
        ({"params": ["train_dnn_pytorch.batch_size=32.5"]}, "32.5 is number, params.yaml holds number (32)"),
        ({"params": ["prepare_data.scale=1"]}, "1 is number, params.yaml holds boolean (True)"),
        ({"params": ["train_dnn_pytorch.lr=[0.1"]}, "s.yaml: params: no viable alternative at input '[0.1'"),
        ({"params": ["train_dnn_pytorch.lr=glob(*)"]}, "s.yaml: params: Glob override"),
        ({"params": []}, "s.yaml: params: a list of `dvc exp run -S` overrides (key=a,b), got []"),
        ({"params": {"train_dnn_pytorch.lr": [0.1]}}, "s.yaml: params: a list of `dvc exp run -S` overrides"),
        ({"metric": "roc_auc"}, "s.yaml: metric: <metrics file stem>/<metric>"),
        ({"order": "up"}, "s.yaml: order: max or min, got 'up'"),
        ({"name": "a b"}, "s.yaml: name: use letters, digits, '.', '_' and '-', got 'a b'"),
        ({"name": "a..b"}, "got 'a..b'"),
        ({"grid": {}}, "s.yaml: grid: unknown key (a sweep file has name, metric, order, params)"),
        ({"params": ["train_dnn_pytorch.lr=1.0,2.0", "seed=range(0,200)"]}, "400 points, more than 256"),
    ],
)  # fmt: skip
def test_a_bad_sweep_file_is_one_line_naming_the_key(data: dict, message: str) -> None:
    with pytest.raises(SweepError) as raised:
        points(sweep_of(**data), PARAMS)

    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_ints_may_stand_for_floats_and_lists_text_and_exponents_keep_their_type() -> None:
    sweep = sweep_of(params=["train_dnn_pytorch.lr=1,1e-3", "train_dnn_pytorch.hidden_layers=[8],[16,8]",
                             "prepare_data.source='csv:a b.csv'"])  # fmt: skip

    grid = points(sweep, PARAMS)

    assert [point.params["train_dnn_pytorch.hidden_layers"] for point in grid[:2]] == ["[8]", "[16,8]"]
    assert {point.params["train_dnn_pytorch.lr"] for point in grid} == {"1", "0.001"}
    assert grid[0].params["prepare_data.source"] == "'csv:a b.csv'"


def test_read_sweep_reads_the_file_and_params(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("seed: 1\ntrain_dnn_pytorch: {lr: 0.1}\n")
    (tmp_path / "lr.yaml").write_text("metric: dnn/val/loss\norder: min\nparams:\n  - seed=1,2,3\n")

    sweep, grid = read_sweep(tmp_path / "lr.yaml", tmp_path / "params.yaml")

    assert (sweep.name, sweep.maximize, sweep.overrides) == ("lr", False, ["seed=1,2,3"])
    assert [point.overrides for point in grid] == [["seed=1"], ["seed=2"], ["seed=3"]]
    with pytest.raises(SweepError, match=r"nope\.yaml: sweep file not found"):
        read_sweep(tmp_path / "nope.yaml", tmp_path / "params.yaml")
    (tmp_path / "bad.yaml").write_text("params: [\n")
    with pytest.raises(SweepError, match=r"bad\.yaml: not valid YAML"):
        read_sweep(tmp_path / "bad.yaml", tmp_path / "params.yaml")


def test_the_committed_sweep_files_are_valid() -> None:
    root = Path(__file__).parents[1]
    for path in Path(__file__).parent.glob("*.yaml"):
        assert read_sweep(path, root / "params.yaml")[1], path


@pytest.mark.parametrize("tag", ["sweep-dnn_lr", "sweep-dnn_lr-20261122-101010-abcdef1"])
def test_a_tag_names_its_sweep_file(tmp_path: Path, tag: str) -> None:
    (tmp_path / "dnn_lr.yaml").write_text("")

    assert sweep_file_for_tag(tag, tmp_path) == tmp_path / "dnn_lr.yaml"


def test_a_tag_without_its_sweep_file_lists_the_sweep_files(tmp_path: Path) -> None:
    (tmp_path / "dnn_lr.yaml").write_text("")

    with pytest.raises(SweepError, match=r"tag sweep-other: no sweep file .*/other.yaml \(sweep files: dnn_lr\)"):
        sweep_file_for_tag("sweep-other", tmp_path)
    with pytest.raises(SweepError, match="tag run-x: sweep tags start with 'sweep-'"):
        sweep_file_for_tag("run-x", tmp_path)


def test_the_matrix_lists_index_name_and_label() -> None:
    grid = points(sweep_of(name="t"), PARAMS)

    assert matrix(grid[:2]) == [
        {"index": 1, "name": "t-1", "label": "lr=0.001 batch_size=32"},
        {"index": 2, "name": "t-2", "label": "lr=0.001 batch_size=64"},
    ]


@pytest.mark.parametrize(("jobs", "cpus", "threads"), [(1, 2, "2"), (2, 2, "1"), (3, 2, "1"), (2, 16, "8")])
def test_each_worker_gets_its_share_of_the_cores(
    monkeypatch: pytest.MonkeyPatch, jobs: int, cpus: int, threads: str
) -> None:
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    env = worker_env(jobs)
    assert {env[name] for name in THREAD_VARIABLES} == {threads}


def test_a_thread_count_set_by_the_user_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("PATH", "/somewhere")
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    env = worker_env(2)
    assert env["OMP_NUM_THREADS"] == "3"
    assert env["PATH"] == "/somewhere"


def test_a_sweep_on_gpus_hands_its_workers_the_gpus_and_the_slot_locks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pandas as pd

    from lib import experiments
    from lib.tracking import store, sync
    from sweeps import grid

    calls: list[tuple[list[str], dict[str, str] | None]] = []
    monkeypatch.setattr(grid, "_dvc", lambda args, repo, env=None: calls.append((list(args), env)) or 0)
    monkeypatch.setattr(experiments, "dvc_experiments", lambda repo, commits: pd.DataFrame({"name": []}))
    # The stubbed store below is a closed port: a sync to it would retry for minutes.
    monkeypatch.setattr(sync, "sync_all", lambda root, wait: [])
    monkeypatch.setattr(store, "tracking_uri", lambda: "http://127.0.0.1:1")
    monkeypatch.setattr(store, "prepare", lambda experiment: None)
    monkeypatch.setattr(grid, "results", lambda *args: [])
    monkeypatch.setattr(grid, "run_links", lambda *args: {})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setenv("REPROLAB_GPU_SLOTS", "2")
    sweep = sweep_of(name="g")

    grid.run_local(tmp_path, sweep, points(sweep, PARAMS), 4, "e")

    _, (run_all, env) = calls
    assert run_all[:2] == ["exp", "run"] and env is not None
    assert env["REPROLAB_SWEEP_GPUS"] == "2,3" and env["REPROLAB_GPU_SLOTS"] == "2"
    assert env["REPROLAB_GPU_MEMORY_FRACTION"] == "0.5"
    assert env["REPROLAB_GPU_SLOT_LOCKS"].startswith(tempfile_root())
    assert not Path(env["REPROLAB_GPU_SLOT_LOCKS"]).exists(), "the locks' folder goes with the sweep"


def tempfile_root() -> str:
    import tempfile

    return tempfile.gettempdir()


def test_a_point_dvc_restored_says_it_made_no_new_run_once_the_store_was_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from lib import experiments
    from sweeps import grid
    from sweeps.search import DONE, FAILED, MISSING

    frame = pd.DataFrame(
        {
            "name": [None, "g-1", "g-2", "g-3"],
            "kind": ["baseline", "branch_commit", "branch_commit", "branch_base"],
            "state": [None, None, None, "Failed"],
            "metrics.dnn/val/roc_auc": [0.9, 0.95, 0.9, None],
        }
    )
    monkeypatch.setattr(experiments, "dvc_experiments", lambda repo, commits: frame)
    sweep = sweep_of(name="g")
    grid_points = points(sweep, PARAMS)

    outcome = grid.results(Path("."), sweep, grid_points, {"g-1": "run-of-g-1"})
    unread = grid.results(Path("."), sweep, grid_points, {})  # no store reached: nothing to say of the runs

    assert [(result.state, result.value, result.runs) for result in outcome] == [
        (DONE, 0.95, "run-of-g-1"),
        (DONE, 0.9, grid.REUSED),  # done, with no run of its name: DVC restored every stage from its caches
        (FAILED, None, ""),
        (MISSING, None, ""),
    ]
    assert [result.runs for result in unread] == ["", "", "", ""]
