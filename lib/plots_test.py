"""plots.py: plot data for DVC and PNG figures that are byte-identical for the same data."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from lib.datasets import Schema, Split
from lib.outputs import commit_outputs
from lib.plots import (
    PlotSet,
    confusion_figure,
    evaluation_plots,
    notice_figure,
    roc_figure,
    roc_points,
    save_png,
    stage_plots,
    training_curves_figure,
)

pytestmark = pytest.mark.unittest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _labels_and_scores(seed: int = 0, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=n)
    y_true[:2] = (0, 1)
    return y_true, np.round(np.clip(0.3 * y_true + rng.uniform(0, 0.7, size=n), 0, 1), 2)


def _history() -> pd.DataFrame:
    epochs = np.arange(1, 6)
    return pd.DataFrame(
        {
            "epoch": epochs,
            "train/loss": 1 / epochs,
            "val/loss": 1.2 / epochs,
            "train/accuracy": 1 - 0.5 / epochs,
            "val/accuracy": 1 - 0.6 / epochs,
        }
    )


def test_the_confusion_table_has_one_int_row_per_sample() -> None:
    plot_set = evaluation_plots(np.array([0, 1, 1], dtype=np.int32), np.array([0.9, 0.5, 0.1]), "m")

    rows = plot_set.tables["confusion"]
    assert list(rows.columns) == ["actual", "predicted"]
    assert list(rows.dtypes) == [np.dtype("int64"), np.dtype("int64")]
    assert rows.to_dict("list") == {"actual": [0, 1, 1], "predicted": [1, 1, 0]}


def test_roc_points_run_from_origin_to_one_one_monotonically() -> None:
    y_true, score = _labels_and_scores()

    points = roc_points(y_true, score)

    assert list(points.columns) == ["fpr", "tpr", "threshold"]
    assert (points.loc[0, "fpr"], points.loc[0, "tpr"]) == (0.0, 0.0)
    assert (points.iloc[-1]["fpr"], points.iloc[-1]["tpr"]) == (1.0, 1.0)
    assert points["fpr"].is_monotonic_increasing
    assert points["tpr"].is_monotonic_increasing
    assert points["threshold"].is_monotonic_decreasing
    assert len(points) == len(np.unique(score)) + 1


def test_roc_points_are_rounded_to_six_decimals() -> None:
    y_true = np.array([0, 1, 0, 1, 0, 1])
    score = np.array([0.1, 0.9, 0.3, 0.4, 0.8, 0.7])

    points = roc_points(y_true, score)

    assert points["fpr"].tolist() == [0.0, 0.0, 0.333333, 0.333333, 0.333333, 0.666667, 1.0]
    assert points["tpr"].tolist() == [0.0, 0.333333, 0.333333, 0.666667, 1.0, 1.0, 1.0]


def test_confusion_figure_shows_the_counts_and_labels() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 1, 1, 1, 1, 0, 0])

    figure = confusion_figure(y_true, y_pred, title="val confusion")

    (axes,) = figure.axes
    assert [text.get_text() for text in axes.texts] == ["2", "1", "2", "5"]
    assert [text.get_position() for text in axes.texts] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert axes.get_title() == "val confusion"
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted", "actual")
    assert [label.get_text() for label in axes.get_xticklabels()] == ["0", "1"]


def _png_bytes(tmp_path: Path, name: str, draw: Callable[[], Figure]) -> bytes:
    path = tmp_path / name
    save_png(draw(), path)
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["confusion", "roc", "training"])
def test_figures_save_as_identical_pngs(tmp_path: Path, kind: str) -> None:
    y_true, score = _labels_and_scores()
    draw = {
        "confusion": lambda: confusion_figure(y_true, (score >= 0.5).astype(int), title="confusion"),
        "roc": lambda: roc_figure(
            {"a": roc_points(y_true, score), "b": roc_points(y_true, 1 - score)},
            {"a": 0.8, "b": 0.2},
            title="roc",
        ),
        "training": lambda: training_curves_figure(_history(), best_epoch=3),
    }[kind]

    first = _png_bytes(tmp_path, "first.png", draw)
    second = _png_bytes(tmp_path, "second.png", draw)

    assert first.startswith(PNG_SIGNATURE)
    assert len(first) > 1000
    assert first == second


def test_different_data_gives_a_different_png(tmp_path: Path) -> None:
    y_true = np.array([0, 1, 1, 0])

    first = _png_bytes(tmp_path, "a.png", lambda: confusion_figure(y_true, np.array([0, 1, 1, 0]), title="t"))
    second = _png_bytes(tmp_path, "b.png", lambda: confusion_figure(y_true, np.array([1, 1, 1, 0]), title="t"))

    assert first != second


def _png_chunk_types(data: bytes) -> list[bytes]:
    types, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        types.append(data[offset + 4 : offset + 8])
        offset += 12 + length  # length, type, data, CRC
    return types


def test_png_carries_no_text_or_time_stamp(tmp_path: Path) -> None:
    data = _png_bytes(tmp_path, "c.png", lambda: training_curves_figure(_history(), best_epoch=2))

    types = _png_chunk_types(data)

    assert types[0] == b"IHDR"
    assert types[-1] == b"IEND"
    assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME"} & set(types)


def test_roc_figure_puts_the_auc_in_the_legend() -> None:
    y_true, score = _labels_and_scores()

    figure = roc_figure({"forest": roc_points(y_true, score)}, {"forest": 0.91234}, title="test ROC")

    (axes,) = figure.axes
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["forest (AUC 0.912)"]
    assert axes.get_title() == "test ROC"


def test_training_curves_mark_the_kept_epoch() -> None:
    figure = training_curves_figure(_history(), best_epoch=4)

    assert [axes.get_title() for axes in figure.axes] == ["loss", "accuracy"]
    for axes in figure.axes:
        labels = [text.get_text() for text in axes.get_legend().get_texts()]
        assert labels == ["train", "val", "kept (epoch 4)"]


def test_training_curves_without_val_draw_train_alone() -> None:
    history = _history().drop(columns=["val/loss", "val/accuracy"])

    figure = training_curves_figure(history, best_epoch=5)

    for axes in figure.axes:
        assert [text.get_text() for text in axes.get_legend().get_texts()] == ["train", "kept (epoch 5)"]


def test_evaluation_plots_hold_the_tables_and_figures_of_one_model() -> None:
    y_true, scores = _labels_and_scores()

    plot_set = evaluation_plots(y_true, scores, "model x")

    assert set(plot_set.tables) == {"confusion", "roc"}
    assert set(plot_set.figures) == {"confusion_matrix", "roc"}
    assert plot_set.tables["confusion"]["predicted"].tolist() == (scores >= 0.5).astype(int).tolist()
    assert plot_set.figures["roc"].axes[0].get_title() == "model x on test"
    pd.testing.assert_frame_equal(plot_set.tables["roc"], roc_points(y_true, scores))


def test_a_plot_set_writes_csv_tables_and_png_figures_into_one_folder(tmp_path: Path) -> None:
    y_true, scores = _labels_and_scores()
    plot_set = evaluation_plots(y_true, scores, "m")
    plot_set.tables["extra"] = pd.DataFrame({"a": [1, 2]})

    with commit_outputs() as outputs:
        pngs = plot_set.write(outputs, tmp_path / "plots")

    assert pngs == [tmp_path / "plots" / "confusion_matrix.png", tmp_path / "plots" / "roc.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "confusion.csv",
        "confusion_matrix.png",
        "extra.csv",
        "roc.csv",
        "roc.png",
    ]
    assert (tmp_path / "plots" / "extra.csv").read_text() == "a\n1\n2\n"
    assert all(p.read_bytes().startswith(PNG_SIGNATURE) for p in pngs)
    assert PlotSet().write(outputs, tmp_path / "empty") == []


def test_roc_points_of_a_large_split_are_thinned_to_max_points_with_both_ends() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, size=20_000)
    scores = rng.random(20_000)

    points = roc_points(y_true, scores, max_points=500)

    assert len(points) == 500
    assert points.iloc[0][["fpr", "tpr"]].tolist() == [0.0, 0.0]
    assert points.iloc[-1][["fpr", "tpr"]].tolist() == [1.0, 1.0]
    assert points["fpr"].is_monotonic_increasing and points["tpr"].is_monotonic_increasing


def test_stage_plots_without_a_test_split_write_the_same_files_with_headers_only(tmp_path: Path) -> None:
    present = stage_plots(Split(pd.DataFrame(), _labels_and_scores()[0]), _labels_and_scores()[1], "m")
    missing = stage_plots(None, None, "m")

    with commit_outputs() as outputs:
        pngs = missing.write(outputs, tmp_path)

    assert set(missing.tables) == set(present.tables) and set(missing.figures) == set(present.figures)
    assert (tmp_path / "confusion.csv").read_text() == "actual,predicted\n"
    assert (tmp_path / "roc.csv").read_text() == "fpr,tpr,threshold\n"
    assert all(p.read_bytes().startswith(PNG_SIGNATURE) for p in pngs)
    assert missing.figures["roc"].axes[0].get_title() == "m on test"
    assert [text.get_text() for text in missing.figures["roc"].axes[0].texts] == [
        "no test split\n(prepare_data.split leaves it out)"
    ]


def test_notice_figure_shows_its_text_and_is_byte_identical(tmp_path: Path) -> None:
    figure = notice_figure("no test split", "m on test")

    texts = [text.get_text() for text in figure.axes[0].texts]
    save_png(figure, tmp_path / "a.png")
    save_png(notice_figure("no test split", "m on test"), tmp_path / "b.png")

    assert texts == ["no test split"]
    assert figure.axes[0].get_title() == "m on test"
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


# --- multiclass and regression -------------------------------------------------------------------

THREE = Schema("multiclass", classes=("bird", "cat", "dog"))


def _three_classes() -> tuple[np.ndarray, np.ndarray]:
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    probability = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.2, 0.5, 0.3],
            [0.1, 0.8, 0.1],
            [0.3, 0.6, 0.1],
            [0.1, 0.1, 0.8],
            [0.2, 0.2, 0.6],
            [0.5, 0.2, 0.3],
        ]
    )
    return y_true, probability


def test_a_multiclass_confusion_matrix_is_n_by_n_with_the_class_names() -> None:
    y_true, probability = _three_classes()

    plot_set = evaluation_plots(y_true, probability, "m", schema=THREE)

    assert plot_set.tables["confusion"].to_dict("list") == {
        "actual": ["bird", "bird", "cat", "cat", "dog", "dog", "dog"],
        "predicted": ["bird", "cat", "cat", "cat", "dog", "dog", "bird"],
    }
    (axes,) = plot_set.figures["confusion_matrix"].axes
    assert [label.get_text() for label in axes.get_yticklabels()] == ["bird", "cat", "dog"]
    assert [text.get_text() for text in axes.texts] == ["1", "1", "0", "0", "2", "0", "1", "0", "2"]


def test_multiclass_roc_curves_are_one_per_class_against_the_rest() -> None:
    y_true, probability = _three_classes()

    plot_set = evaluation_plots(y_true, probability, "m", schema=THREE)

    roc = plot_set.tables["roc"]
    assert list(roc.columns) == ["class", "fpr", "tpr", "threshold"]
    assert list(roc["class"].unique()) == ["bird", "cat", "dog"]
    pd.testing.assert_frame_equal(
        roc[roc["class"] == "cat"].drop(columns="class").reset_index(drop=True),
        roc_points(y_true == 1, probability[:, 1]),
    )
    legend = [text.get_text() for text in plot_set.figures["roc"].axes[0].get_legend().get_texts()]
    assert [entry.split(" (")[0] for entry in legend] == ["bird", "cat", "dog"]


def test_regression_plots_are_predictions_with_residuals_and_two_figures(tmp_path: Path) -> None:
    y_true, prediction = np.array([1.0, 2.5, 4.0]), np.array([1.5, 2.0, 4.0])

    plot_set = evaluation_plots(y_true, prediction, "m", schema=Schema("regression"))

    assert plot_set.tables["predictions"].to_dict("list") == {
        "actual": [1.0, 2.5, 4.0],
        "predicted": [1.5, 2.0, 4.0],
        "residual": [-0.5, 0.5, 0.0],
    }
    assert set(plot_set.figures) == {"predicted_vs_actual", "residuals"}
    assert plot_set.figures["residuals"].axes[0].get_ylabel() == "actual - predicted"


@pytest.mark.parametrize("schema", [THREE, Schema("regression")])
def test_stage_plots_without_a_test_split_match_each_tasks_files(schema: Schema) -> None:
    present = evaluation_plots(*_three_classes(), "m", schema=THREE)
    if not schema.is_classification:
        present = evaluation_plots(np.array([1.0, 2.0]), np.array([1.0, 3.0]), "m", schema=schema)

    missing = stage_plots(None, None, "m", schema)

    assert set(present.tables) < set(missing.tables) and set(present.figures) < set(missing.figures)
    for name, table in present.tables.items():
        assert list(missing.tables[name].columns) == list(table.columns) and missing.tables[name].empty


def test_stage_plots_add_the_other_kinds_files_header_only() -> None:
    y_true, scores = _labels_and_scores()
    for_binary = stage_plots(Split(pd.DataFrame(), y_true), scores, "m")
    for_regression = stage_plots(
        Split(pd.DataFrame(), np.array([1.0, 2.0])), np.array([1.0, 3.0]), "m", Schema("regression")
    )

    assert set(for_binary.tables) == {"confusion", "roc", "predictions"}
    assert set(for_binary.figures) == {"confusion_matrix", "roc", "predicted_vs_actual", "residuals"}
    assert set(for_regression.tables) == set(for_binary.tables)
    assert set(for_regression.figures) == set(for_binary.figures)
    assert for_binary.tables["predictions"].empty and not for_binary.tables["confusion"].empty
    assert for_regression.tables["confusion"].empty and for_regression.tables["roc"].empty
    notice = for_regression.figures["roc"].axes[0]
    assert [text.get_text() for text in notice.texts] == ["a classification plot: the task is regression"]
