"""Axis and legend labels of the factor-graph figures."""

from __future__ import annotations

import pytest

from causalvae import graph_figures
from causalvae.graph import get_preset


@pytest.fixture
def captured(monkeypatch):
    figures = []

    def keep(figure, path):
        figures.append(figure)

    monkeypatch.setattr(graph_figures, "_save_atomic", keep)
    return figures


def test_shape_axis_uses_shape_names(captured, tmp_path):
    graph_figures.plot_condition_vs_do(
        get_preset("chain"), "scale", "shape", tmp_path / "f.png", values=[0, 5]
    )

    left = captured[0].axes[0]
    ticks = [label.get_text() for label in left.get_xticklabels()]
    assert ticks == ["square", "ellipse", "heart"]
    assert left.get_xlabel() == "shape"


def test_legend_shows_scale_values(captured, tmp_path):
    graph_figures.plot_condition_vs_do(
        get_preset("chain"), "scale", "shape", tmp_path / "f.png", values=[0, 5]
    )

    legend = [text.get_text() for text in captured[0].axes[0].get_legend().texts]
    assert legend[0].startswith("scale=0.50 (TV")
    assert legend[1].startswith("scale=1.00 (TV")


def test_position_axis_keeps_class_indices(captured, tmp_path):
    graph_figures.plot_condition_vs_do(
        get_preset("chain"), "scale", "pos_y", tmp_path / "f.png", values=[0]
    )

    assert captured[0].axes[0].get_xlabel() == "pos_y class"
