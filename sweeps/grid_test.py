"""grid.py: sweep files checked against params.yaml, the grid's points, overrides, tags and the CI matrix."""

from pathlib import Path

import pytest

from sweeps.grid import SweepError, matrix, override_value, parse_sweep, points, read_sweep, sweep_file_for_tag

pytestmark = pytest.mark.unittest

PARAMS = {
    "seed": 42,
    "train_dnn_pytorch": {"lr": 0.001, "batch_size": 32, "hidden_layers": [32, 16], "device": "auto"},
    "prepare_data": {"scale": True},
}
GRID = {"train_dnn_pytorch.lr": [0.001, 0.01], "train_dnn_pytorch.batch_size": [32, 64]}


def sweep_of(**data: object) -> object:
    return parse_sweep({"metric": "dnn/val/roc_auc", "params": GRID, **data}, "s.yaml", PARAMS, "s")


def test_the_grid_is_the_product_in_file_order_named_after_the_prefix() -> None:
    sweep = sweep_of(name="lr")

    grid = points(sweep)

    assert [point.name for point in grid] == ["lr-1", "lr-2", "lr-3", "lr-4"]
    assert [point.params for point in grid] == [
        {"train_dnn_pytorch.lr": 0.001, "train_dnn_pytorch.batch_size": 32},
        {"train_dnn_pytorch.lr": 0.001, "train_dnn_pytorch.batch_size": 64},
        {"train_dnn_pytorch.lr": 0.01, "train_dnn_pytorch.batch_size": 32},
        {"train_dnn_pytorch.lr": 0.01, "train_dnn_pytorch.batch_size": 64},
    ]
    assert grid[1].overrides() == ["train_dnn_pytorch.lr=0.001", "train_dnn_pytorch.batch_size=64"]
    assert grid[1].label() == "lr=0.001 batch_size=64"
    assert [point.name for point in points(sweep, prefix="sweep-x")][:1] == ["sweep-x-1"]


def test_defaults_the_file_stem_as_name_and_max_as_order() -> None:
    sweep = sweep_of()

    assert (sweep.name, sweep.metric, sweep.maximize) == ("s", "dnn/val/roc_auc", True)
    assert sweep_of(order="min").maximize is False


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.001, "0.001"),
        (1e-05, "1e-05"),
        (64, "64"),
        (True, "true"),
        (None, "null"),
        ([64, 32], "[64,32]"),
        ({"C": 1.0}, "{C:1.0}"),
        ("cuda", "cuda"),
        ("sklearn:breast_cancer", "'sklearn:breast_cancer'"),
        ("true", "'true'"),
        ("it's", "'it\\'s'"),
    ],
)
def test_override_values_keep_their_type_in_hydra_grammar(value: object, text: str) -> None:
    assert override_value(value) == text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"params": {"train_dnn_pytorch.lrr": [1.0]}}, "s.yaml: params: train_dnn_pytorch.lrr: unknown key"),
        ({"params": {"nope": [1]}}, "s.yaml: params: nope: unknown key (not in params.yaml)"),
        ({"params": {"train_dnn_pytorch": [1]}}, "train_dnn_pytorch: a section of params.yaml"),
        ({"params": {"train_dnn_pytorch.lr": []}}, "train_dnn_pytorch.lr: a non-empty list of values, got []"),
        ({"params": {"train_dnn_pytorch.lr": 0.1}}, "train_dnn_pytorch.lr: a non-empty list of values, got 0.1"),
        ({"params": {"train_dnn_pytorch.lr": ["1e-3"]}}, "'1e-3' is text, params.yaml holds number (0.001)"),
        ({"params": {"train_dnn_pytorch.batch_size": [32.5]}}, "32.5 is number, params.yaml holds number (32)"),
        ({"params": {"prepare_data.scale": [1]}}, "1 is number, params.yaml holds boolean (True)"),
        ({"params": {}}, "s.yaml: params: a mapping of params.yaml keys to lists of values, got {}"),
        ({"metric": "roc_auc"}, "s.yaml: metric: <metrics file stem>/<metric>"),
        ({"order": "up"}, "s.yaml: order: max or min, got 'up'"),
        ({"name": "a b"}, "s.yaml: name: use letters, digits, '.', '_' and '-', got 'a b'"),
        ({"name": "a..b"}, "got 'a..b'"),
        ({"grid": {}}, "s.yaml: grid: unknown key (a sweep file has name, metric, order, params)"),
        ({"params": {"train_dnn_pytorch.lr": [1.0, 2.0], "seed": list(range(200))}}, "400 points, more than 256"),
    ],
)  # fmt: skip
def test_a_bad_sweep_file_is_one_line_naming_the_key(data: dict, message: str) -> None:
    with pytest.raises(SweepError) as raised:
        sweep_of(**data)

    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_ints_may_stand_for_floats_and_nested_lists_for_lists() -> None:
    sweep = sweep_of(params={"train_dnn_pytorch.lr": [1], "train_dnn_pytorch.hidden_layers": [[8], [16, 8]]})

    assert [point.overrides()[1] for point in points(sweep)] == [
        "train_dnn_pytorch.hidden_layers=[8]",
        "train_dnn_pytorch.hidden_layers=[16,8]",
    ]


def test_read_sweep_reads_the_file_and_params(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("seed: 1\ntrain_dnn_pytorch: {lr: 0.1}\n")
    (tmp_path / "lr.yaml").write_text("metric: dnn/val/loss\norder: min\nparams:\n  seed: [1, 2, 3]\n")

    sweep = read_sweep(tmp_path / "lr.yaml", tmp_path / "params.yaml")

    assert (sweep.name, sweep.maximize, sweep.grid) == ("lr", False, {"seed": [1, 2, 3]})
    with pytest.raises(SweepError, match=r"nope\.yaml: sweep file not found"):
        read_sweep(tmp_path / "nope.yaml", tmp_path / "params.yaml")
    (tmp_path / "bad.yaml").write_text("params: [\n")
    with pytest.raises(SweepError, match=r"bad\.yaml: not valid YAML"):
        read_sweep(tmp_path / "bad.yaml", tmp_path / "params.yaml")


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
    grid = points(sweep_of(name="t"))

    assert matrix(grid[:2]) == [
        {"index": 1, "name": "t-1", "label": "lr=0.001 batch_size=32"},
        {"index": 2, "name": "t-2", "label": "lr=0.001 batch_size=64"},
    ]
