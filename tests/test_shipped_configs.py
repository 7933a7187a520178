from __future__ import annotations

from pathlib import Path

import pytest

from dlrun.api import models_for_summary
from dlrun.config.load import load_config
from dlrun.data.catalog import source_class
from tests.conftest import REPO

CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def test_configs_exist() -> None:
    names = {p.relative_to(REPO / "configs").as_posix() for p in CONFIGS}
    assert {
        "quickstart.yaml",
        "course/pima.yaml",
        "dlwp/ch2_mnist_dense.yaml",
        "beginners/ch6_spirals.yaml",
        "dlwp/ch3_boston_kfold.yaml",
        "dlwp/ch3_boston_curves.yaml",
        "dlwp/ch3_boston_final.yaml",
        "dlwp/ch4_imdb_original.yaml",
        "dlwp/ch4_imdb_smaller.yaml",
        "dlwp/ch4_imdb_bigger.yaml",
        "dlwp/ch4_imdb_l2.yaml",
        "dlwp/ch4_imdb_dropout.yaml",
        "beginners/ch4_cv_regression.yaml",
        "beginners/ch4_layers_cv.yaml",
        "dlwp/ch3_imdb.yaml",
        "dlwp/ch3_imdb_final.yaml",
        "dlwp/ch3_reuters.yaml",
        "dlwp/ch3_reuters_final.yaml",
        "dlwp/ch3_reuters_bottleneck.yaml",
        "dlwp/ch3_reuters_sparse_labels.yaml",
        "dlwp/ch5_mnist_convnet.yaml",
        "dlwp/ch6_imdb_conv1d.yaml",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_shipped_config_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name


@pytest.mark.parametrize(
    ("config", "params"),
    [
        ("dlwp/ch2_mnist_dense.yaml", 407_050),
        ("course/pima.yaml", 221),
        ("quickstart.yaml", 8_970),
        ("dlwp/ch3_boston_kfold.yaml", 5_121),
        ("dlwp/ch4_imdb_original.yaml", 160_305),
        ("dlwp/ch4_imdb_smaller.yaml", 40_029),
        ("dlwp/ch4_imdb_bigger.yaml", 5_383_681),
        ("dlwp/ch3_reuters.yaml", 647_214),
        ("dlwp/ch3_reuters_bottleneck.yaml", 640_554),
        ("dlwp/ch5_mnist_convnet.yaml", 93_322),
        ("dlwp/ch5_dogs_cats_augmented.yaml", 3_453_121),
        ("dlwp/ch6_jena_dense.yaml", 107_585),
        ("dlwp/ch6_jena_gru.yaml", 4_545),
        ("dlwp/ch6_imdb_embedding.yaml", 80_161),
        ("dlwp/ch6_imdb_simple_rnn.yaml", 322_113),
        ("dlwp/ch6_imdb_conv1d.yaml", 1_315_937),
        ("dlwp/ch6_imdb_lstm.yaml", 328_353),
        ("dlwp/ch6_imdb_lstm_reversed.yaml", 1_300_641),
        ("dlwp/ch6_imdb_bidirectional_lstm.yaml", 336_705),
        ("dlwp/ch6_jena_gru_dropout.yaml", 4_545),
        ("dlwp/ch6_jena_stacked_gru.yaml", 23_201),
        ("dlwp/ch6_jena_gru_reversed.yaml", 4_545),
        ("dlwp/ch6_jena_bidirectional_gru.yaml", 9_089),
        ("dlwp/ch6_jena_conv1d.yaml", 12_609),
        ("dlwp/ch6_jena_conv1d_gru.yaml", 13_697),
        ("beginners/ch13_imdb_simple_rnn.yaml", 643_265),
        ("beginners/ch13_imdb_lstm.yaml", 652_577),
        ("beginners/ch7_bits_autoencoder.yaml", 190),
        ("beginners/ch7_mnist_autoencoder.yaml", 638_854),
        ("beginners/ch7_mnist_autoencoder_six_layers.yaml", 45_366),
        ("beginners/ch7_mnist_autoencoder_four_layers.yaml", 16_526),
        ("beginners/ch7_mnist_autoencoder_two_layers.yaml", 3_922),
        ("beginners/ch8_mnist_deep_autoencoder.yaml", 1_797_146),
        ("beginners/ch10_mnist_autoencoder_100.yaml", 157_684),
        ("beginners/ch9_mnist_vae_shallow.yaml", 807_700),  # Keras's, the heads as two Dense
        ("beginners/ch9_mnist_vae_deep.yaml", 1_797_158),
        ("beginners/ch9_heart_vae.yaml", 511),
        ("dlwp/ch8_mnist_vae.yaml", 550_629),
        ("beginners/ch13_mnist_lstm_autoencoder.yaml", 10_950),  # the book's summary
        ("beginners/ch13_mnist_bilstm_autoencoder.yaml", 49_408),  # the book's summary
        ("beginners/ch8_imdb_autoencoder.yaml", 262_912),
        ("beginners/ch8_imdb_autoencoder_batchnorm.yaml", 263_936),
        ("beginners/ch8_imdb_autoencoder_dropout.yaml", 230_272),
        ("beginners/ch8_imdb_autoencoder_relu.yaml", 230_272),
    ],
)
def test_parameter_counts_equal_keras(
    config: str, params: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = REPO.parent / "shared/data"
    cfg = load_config(REPO / "configs" / config)
    files = source_class(cfg.data.dataset).resources  # none: bundled or generated data
    if cfg.model.input_shape is None and files and not (mirror / cfg.data.dataset).is_dir():
        pytest.skip(f"{cfg.data.dataset} is not in the shared mirror beside this checkout")
    monkeypatch.setenv("DLRUN_DATA_PATH", str(mirror))
    monkeypatch.chdir("/")  # data paths never depend on the working directory
    (model,) = models_for_summary(cfg)
    assert model.total_params == params


@pytest.mark.parametrize(
    ("config", "points"),
    [
        ("beginners/ch6_spirals_search.yaml", 9),
        ("beginners/ch4_layers_search.yaml", 7),
        ("beginners/ch11_widenet_grid.yaml", 24),
        ("dlwp/ch3_imdb_sweep.yaml", 12),
    ],
)
def test_sweep_configs_check_every_value(config: str, points: int) -> None:
    from dlrun.sweep.trials import check_space
    from dlrun.sweep.trials import grid_points

    cfg = load_config(REPO / "configs" / config)
    assert cfg.sweep is not None
    check_space(cfg)  # every choice gives a valid config
    assert len(grid_points(cfg.sweep)) == points


SPEC = REPO.parent / "shared" / "spec"
SPEC_FILES = {
    "dlwp": "dlwp_experiments.md",
    "beginners": "beginners_experiments.md",
    "course": "course_and_dlwr_experiments.md",
}
BOOK_CONFIGS = [p for p in CONFIGS if p.parent != REPO / "configs"]  # quickstart is dlrun's own


@pytest.mark.parametrize("path", BOOK_CONFIGS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_book_config_names_its_experiment_row(path: Path) -> None:
    """Each shipped book config says which spec row it reproduces, and that row exists."""
    source = load_config(path).source
    assert source is not None, f"{path.name} has no source: {{book: ..., experiment: ...}}"
    assert path.parent.name == source.book.value  # configs/<book>/...
    spec = SPEC / SPEC_FILES[source.book.value]
    if not spec.exists():
        pytest.skip(f"{spec} is not on this machine")
    rows = {line.split("|")[1].strip() for line in spec.read_text().splitlines()
            if line.startswith("| ")}  # fmt: skip
    assert source.experiment in rows, f"{source.experiment} is not a row of {spec.name}"
