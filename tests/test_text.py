"""Text inputs: the Keras tokenizer, pad_sequences, reverse, character windows, and ids that
reach an embedding as integers."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.config.schema import StepEntry
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.load import load_data
from dlrun.errors import ConfigError
from dlrun.errors import DataError
from dlrun.evaluation import preflight
from dlrun.predict_inputs import read_inputs
from dlrun.preprocess.pipeline import build_pipeline
from dlrun.preprocess.pipeline import fit_pipeline
from dlrun.preprocess.sequences import pad_sequences
from dlrun.preprocess.tokenizer import Tokenize
from dlrun.reuse import predict_file
from tests.conftest import tiny_config

# The TensorFlow course's Tokenizer example (Keras 2's keras.preprocessing.text), with the
# word index and sequences Keras printed for it.
COURSE = ["I love my dog", "I love my cat", "You love my dog!", "Do you think my dog is amazing?"]
COURSE_INDEX = {"<OOV>": 1, "my": 2, "love": 3, "dog": 4, "i": 5, "you": 6, "cat": 7, "do": 8,
                "think": 9, "is": 10, "amazing": 11}  # fmt: skip
COURSE_TEST = ["i really love my dog", "my dog loves my manatee"]
COURSE_TEST_SEQUENCES = [[5, 1, 3, 2, 4], [2, 4, 1, 2, 1]]


def texts(*rows: str) -> np.ndarray:
    array = np.empty(len(rows), dtype=object)
    array[:] = rows
    return array


def ragged(rows: list[list[int]]) -> np.ndarray:
    array = np.empty(len(rows), dtype=object)
    array[:] = [np.asarray(row, dtype=np.int64) for row in rows]
    return array


def samples(*rows: object) -> np.ndarray:
    """Rows as a user's data may hold them: Python lists, mixed numbers, nested lists."""
    array = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        array[i] = row
    return array


def step(name: str, params: dict[str, Any] | None = None) -> Any:
    return build_pipeline([StepEntry.model_validate({name: params or {}})]).steps[0][1]


def as_lists(sequences: np.ndarray) -> list[list[int]]:
    return [list(map(int, row)) for row in sequences]


def test_tokenizer_reproduces_keras_word_index_and_sequences() -> None:
    tokenizer = step("tokenize", {"num_words": 100, "oov_token": "<OOV>"}).fit(texts(*COURSE))
    assert tokenizer.word_index == COURSE_INDEX
    assert as_lists(tokenizer.transform(texts(*COURSE_TEST))) == COURSE_TEST_SEQUENCES


def test_tokenizer_ranks_ties_by_first_appearance_and_applies_keras_filters() -> None:
    corpus = texts("The cat sat on the mat.", "The dog ate my homework!", "Cat, dog;\tCAT?\nmat")
    tokenizer = step("tokenize").fit(corpus)
    # counts: the 3, cat 3, mat 2, dog 2, then the words seen once, in order of appearance
    assert tokenizer.word_index == {"the": 1, "cat": 2, "mat": 3, "dog": 4, "sat": 5, "on": 6,
                                    "ate": 7, "my": 8, "homework": 9}  # fmt: skip
    assert as_lists(tokenizer.transform(texts("THE (dog) & the mat-cat"))) == [[1, 4, 1, 3, 2]]


def test_num_words_keeps_indices_below_it_and_unknown_words_drop_without_oov() -> None:
    corpus = texts("a a a b b c", "d")
    plain = step("tokenize", {"num_words": 3}).fit(corpus)  # keeps a=1, b=2
    assert as_lists(plain.transform(texts("a b c d e"))) == [[1, 2]]
    oov = step("tokenize", {"num_words": 3, "oov_token": "?"}).fit(corpus)  # ?=1, a=2
    assert as_lists(oov.transform(texts("a b c e"))) == [[2, 1, 1, 1]]
    kept = step("tokenize", {"lower": False, "filters": "", "split": ","}).fit(texts("A,a!,A"))
    assert kept.word_index == {"A": 1, "a!": 2}


def test_tokenizer_is_fitted_on_the_training_texts_only() -> None:
    data = Arrays(texts("good film", "bad film", "unseen words here"), np.array([1, 0, 1]))
    entries = [StepEntry.model_validate({"tokenize": {"oov_token": "<unk>"}})]
    pipeline = fit_pipeline(entries, data, train_idx=np.array([0, 1]))
    tokenizer = pipeline.steps[0][1]
    assert isinstance(tokenizer, Tokenize) and tokenizer.word_index == {
        "<unk>": 1,
        "film": 2,
        "good": 3,
        "bad": 4,
    }
    assert as_lists(pipeline.transform(data.subset(np.array([2]))).x) == [[1, 1, 1]]


def test_tokenizer_vocabulary_round_trips_through_its_tensor_state() -> None:
    tokenizer = step("tokenize", {"oov_token": "<OOV>"}).fit(texts("naïve café 東京 café", ""))
    state = tokenizer.state_dict()
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    restored = step("tokenize", {"oov_token": "<OOV>"})
    restored.load_state_dict(state)
    assert restored.word_index == tokenizer.word_index == {"<OOV>": 1, "café": 2, "naïve": 3,
                                                           "東京": 4}  # fmt: skip
    probe = texts("東京 café x")
    assert as_lists(restored.transform(probe)) == as_lists(tokenizer.transform(probe))


def test_tokenizer_refuses_numbers_in_one_line() -> None:
    with pytest.raises(DataError, match="tokenize reads one text per sample"):
        step("tokenize").fit(np.zeros((3, 4)))


SEQUENCES = [[1, 2, 3, 4, 5, 6], [7], [], [8, 9, 10]]


@pytest.mark.parametrize(
    ("padding", "truncating"), list(itertools.product(["pre", "post"], ["pre", "post"]))
)
def test_pad_sequences_equals_keras(padding: str, truncating: str) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for maxlen, value in ((4, 0), (8, -1), (None, 0)):
        expected = keras.utils.pad_sequences(
            SEQUENCES, maxlen=maxlen, padding=padding, truncating=truncating, value=value
        )
        pad = step("pad_sequences", {"maxlen": maxlen, "padding": padding,
                                     "truncating": truncating, "value": value})  # fmt: skip
        out = pad.fit(ragged(SEQUENCES)).transform(ragged(SEQUENCES))
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, expected)


def test_pad_sequences_without_maxlen_uses_the_longest_training_sequence() -> None:
    pad = step("pad_sequences").fit(ragged([[1, 2], [3, 4, 5]]))
    out = pad.transform(ragged([[1, 2, 3, 4, 5, 6], [7]]))
    assert out.tolist() == [[4, 5, 6], [0, 0, 7]]
    with pytest.raises(DataError, match="add tokenize before pad_sequences"):
        pad.transform(texts("raw words"))


@pytest.mark.parametrize("name", ["multi_hot", "pad_sequences"])
def test_index_steps_refuse_missing_and_fractional_ids(name: str) -> None:
    """Ids read from a CSV arrive as floats: whole ones are ids; a NaN (a missing cell) or a
    fraction is refused in one line, where a cast to integers would make up an id."""
    fitted = step(name, {"dim": 20} if name == "multi_hot" else {"maxlen": 4})
    fitted.fit(ragged([[1, 2, 3]]))
    whole = np.array([[1.0, 14.0, 3.0]])
    expected = np.array([[0, 1, 14, 3]]) if name == "pad_sequences" else None
    out = fitted.transform(whole)
    if expected is not None:
        assert out.tolist() == expected.tolist()
    else:
        assert out.dense()[0].nonzero()[0].tolist() == [1, 3, 14]
    for bad, shown in [(np.nan, "a missing value (NaN)"), (22.7, "22.7")]:
        with pytest.raises(DataError, match=rf"{name} acts on index sequences of whole numbers; "
                                            rf"got {re.escape(shown)}$"):  # fmt: skip
            fitted.transform(np.array([[1.0, bad, 3.0]]))


@pytest.mark.parametrize("name", ["multi_hot", "pad_sequences"])
def test_index_steps_refuse_samples_that_are_not_one_sequence_of_ids(name: str) -> None:
    """Images, single numbers, booleans and floats past int64 gave a traceback or made up
    ids (1e20 cast to an arbitrary one); each is now one line."""
    fitted = step(name, {"dim": 20} if name == "multi_hot" else {"maxlen": 4})
    fitted.fit(ragged([[1, 2, 3]]))
    cases = [
        (np.zeros((2, 3, 4)), "one index sequence per sample; a sample here is an array of shape (3, 4)"),
        (np.array([3.0, 4.0]), "one index sequence per sample; a sample here is one number"),
        (np.array([[True, False]]), "index sequences of whole numbers; got booleans"),
        (samples([1, 2], [[1, 2], [3]]), "one index sequence of numbers per sample; a sample here is [[1, 2], [3]]"),
        (samples([1, 2], [1.5, 2]), "index sequences of whole numbers; got 1.5"),
    ]  # fmt: skip
    for data, message in cases:
        with pytest.raises(DataError, match=rf"^{name} acts on {re.escape(message)}$"):
            fitted.transform(data)
    for huge in (1e20, -1e20):  # a cast to int64 would wrap these
        with pytest.raises(
            DataError, match=rf"^{name}: index {re.escape(repr(huge))} lies outside the int64"
        ):
            fitted.transform(np.array([[1.0, huge]]))


def test_multi_hot_refuses_negative_ids_instead_of_dropping_them() -> None:
    fitted = step("multi_hot", {"dim": 20})
    fitted.fit(ragged([[1, 2, 3]]))
    with pytest.raises(
        DataError, match=r"^multi_hot acts on indices from 0 \(word ranks\); got -5$"
    ):
        fitted.transform(ragged([[1, 2], [-5, 3]]))


def test_pad_sequences_keeps_the_last_ids_by_default() -> None:
    assert pad_sequences(ragged([[1, 2, 3]]), 2, "pre", "pre", 0).tolist() == [[2, 3]]


def test_reverse_before_and_after_padding() -> None:
    sequences = ragged([[1, 2, 3], [4]])
    reverse = step("reverse")
    assert as_lists(reverse.transform(sequences)) == [[3, 2, 1], [4]]
    padded = pad_sequences(sequences, 3, "pre", "pre", 0)
    assert reverse.transform(padded).tolist() == [[3, 2, 1], [4, 0, 0]]
    then_pad = pad_sequences(reverse.transform(sequences), 3, "pre", "pre", 0)
    assert then_pad.tolist() == [[3, 2, 1], [0, 0, 4]]  # DLwP 6.3.8's order
    with pytest.raises(DataError, match="add tokenize before reverse"):
        reverse.transform(texts("abc"))


CHAR_TASK = {"preprocess": [], "loss": "sparse_categorical_crossentropy"}


def test_char_text_gives_one_hot_windows_and_next_characters(tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_text("Abcab cabc")
    cfg = tiny_config(
        data={"dataset": "char_text", "path": str(tmp_path / "book.txt"), "maxlen": 3, "step": 2},
        **CHAR_TASK,
    )
    data = load_data(config_from_data(cfg))
    assert data.class_names == [" ", "a", "b", "c"] and data.test_split is None
    x, y = data.train.x, data.train.y
    text = "abcab cabc"
    starts = list(range(0, len(text) - 3, 2))
    assert x.shape == (len(starts), 3, 4) and x.dtype == np.uint8 and y.shape == (len(starts),)
    decoded = ["".join(data.class_names[i] for i in row.argmax(axis=1)) for row in x]
    assert decoded == [text[s : s + 3] for s in starts]
    assert [data.class_names[i] for i in y] == [text[s + 3] for s in starts]
    assert (x.sum(axis=2) == 1).all()


def test_char_text_one_hot_windows_train_an_lstm(tmp_path: Path) -> None:
    text = "the cat sat on the mat. " * 6
    (tmp_path / "book.txt").write_text(text)
    chars = len(set(text))
    cfg = tiny_config(
        data={"dataset": "char_text", "path": str(tmp_path / "book.txt"), "maxlen": 5, "step": 3},
        **CHAR_TASK, evaluation={"validation": None},
        model={"layers": [{"lstm": 8}, {"dense": {"units": chars, "activation": "softmax"}}]},
        train={"epochs": 2, "batch_size": 16, "progress": "none"},
    )  # fmt: skip
    result = run_experiment(config_from_data(cfg), tmp_path / "runs")
    rows = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and np.isfinite(json.loads(rows[-1])["loss"])


def test_float_inputs_to_an_embedding_are_refused_with_the_fix(tmp_path: Path) -> None:
    archive(tmp_path)
    cfg = text_config(tmp_path, preprocess=[{"tokenize": 20}, {"pad_sequences": 6},
                                            {"rescale": 0.5}])  # fmt: skip
    with pytest.raises(
        DataError, match=r"first layer \(embedding\) reads integer token ids.*float32"
    ):
        run_experiment(config_from_data(cfg), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_token_ids_beyond_the_embedding_table_are_refused_before_the_run(tmp_path: Path) -> None:
    archive(tmp_path)
    cfg = text_config(tmp_path, preprocess=[{"tokenize": {}}, {"pad_sequences": 6}])
    with pytest.raises(DataError, match=r"token id 14, outside the embedding layer's 0\.\.11; "
                       r"set input_dim: 15, or keep fewer words"):  # fmt: skip
        run_experiment(config_from_data(cfg), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_imdb_text_output_needs_the_raw_source_and_no_index_options() -> None:
    with pytest.raises(ConfigError, match="output: text needs source: raw"):
        config_from_data(tiny_config(data={"dataset": "imdb", "output": "text"}))
    with pytest.raises(ConfigError, match="num_words shape word-index sequences"):
        data = {"dataset": "imdb", "source": "raw", "output": "text", "num_words": 100}
        config_from_data(tiny_config(data=data))


GOOD, BAD = ["great", "superb", "lovely"], ["awful", "dull", "boring"]
FILLER = ["the", "film", "was", "a", "plot", "and", "actors"]


def archive(folder: Path, per_class: int = 40) -> Path:
    """A small aclImdb tarball whose labels follow a few sentiment words."""
    rng = np.random.default_rng(0)
    with tarfile.open(folder / "aclImdb_v1.tar.gz", "w:gz") as tar:
        for split, (label, words) in itertools.product(("train", "test"), (("pos", GOOD),
                                                                            ("neg", BAD))):  # fmt: skip
            for i in range(per_class):
                chosen = rng.choice(FILLER + words, size=int(rng.integers(3, 12)))
                body = (" ".join(chosen).capitalize() + ".<br /><br />").encode()
                info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{i}_7.txt")
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return folder


def text_config(folder: Path, **changes: Any) -> dict[str, Any]:
    config = tiny_config(
        task="binary",
        data={"dataset": "imdb", "source": "raw", "output": "text", "path": str(folder)},
        preprocess=[{"tokenize": {"num_words": 12, "oov_token": "<unk>"}},
                    {"pad_sequences": {"maxlen": 8}}],
        model={"layers": [{"embedding": {"input_dim": 12, "output_dim": 4}}, {"lstm": 4},
                          {"dense": {"units": 1, "activation": "sigmoid"}}]},
        loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"],
        train={"epochs": 2, "batch_size": 16, "progress": "none"},
        evaluation={"validation": {"last_fraction": 0.25}},
    )  # fmt: skip
    config.update(changes)
    return config


def test_imdb_text_is_the_reviews_as_written_in_the_keras_order(tmp_path: Path) -> None:
    archive(tmp_path, per_class=3)
    data = load_data(config_from_data(text_config(tmp_path)))
    x, y = data.train.x, data.train.y
    assert x.dtype == object and len(x) == 6 and all(t.endswith(".<br /><br />") for t in x)
    assert data.class_names == ["neg", "pos"] and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    assert data.test_split is not None and len(data.test_split) == 6


def test_text_tokenize_pad_embedding_lstm_trains_end_to_end(tmp_path: Path) -> None:
    archive(tmp_path)
    result = run_experiment(config_from_data(text_config(tmp_path)), tmp_path / "runs")
    rows = [json.loads(r) for r in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["val_loss"]) for r in rows)
    assert result.results["data"]["sizes"] == {"train": 60, "validation": 20, "test": 80}
    assert 0.0 <= result.results["test"]["accuracy"] <= 1.0
    saved = torch.load(result.run_dir / "checkpoint.pt", weights_only=True)["preprocess"]
    restored = step("tokenize", {"num_words": 12, "oov_token": "<unk>"})
    restored.load_state_dict({k.removeprefix("0.tokenize."): v for k, v in saved.items()
                              if k.startswith("0.tokenize.")})  # fmt: skip
    assert restored.word_index["<unk>"] == 1 and "great" in restored.word_index
    assert int(saved["1.pad_sequences.maxlen_"]) == 8


def _predicted_three_ways(run: Path, folder: Path, good: str, bad: str, txt: bytes) -> str:
    """The predictions for two texts given as a .txt file (``txt``), a CSV with a text
    column and an .npz of strings, which must be the same."""
    (folder / "new.txt").write_bytes(txt)
    (folder / "new.csv").write_text(f'id,text\n1,"{good}"\n2,"{bad}"\n')
    np.savez(folder / "new.npz", x=np.array([good, bad]))
    outputs = []
    for name in ("new.txt", "new.csv", "new.npz"):
        assert predict_file(run, folder / name, folder / "out.csv") == 2
        outputs.append((folder / "out.csv").read_text())
    assert outputs[0] == outputs[1] == outputs[2]
    return outputs[0]


def test_a_run_that_tokenizes_predicts_on_new_texts(tmp_path: Path) -> None:
    """Its inputs are texts (a .txt file, a CSV column, an .npz of strings), tokenized with the
    run's fitted vocabulary; before, predict asked for numbers."""
    archive(tmp_path)
    cfg = text_config(tmp_path, preprocess=[{"tokenize": {"num_words": 12}}, {"multi_hot": 12}],
                      model={"layers": [{"dense": 4},
                                        {"dense": {"units": 1, "activation": "sigmoid"}}]},
                      train={"epochs": 40, "batch_size": 16, "progress": "none"})  # fmt: skip
    run = run_experiment(config_from_data(cfg), tmp_path / "runs").run_dir
    # one text holds a Unicode line separator: still one text, in every format
    good, bad = "A great, lovely film", "Dull and boring,\u2028 awful plot"
    # a byte-order mark, a Windows line end and a blank line
    txt = f"\ufeff{good}\r\n\n{bad}\n".encode()
    predicted = _predicted_three_ways(run, tmp_path, good, bad, txt)
    rows = [line.split(",") for line in predicted.splitlines()]
    assert rows[0] == ["prediction", "probability"] and [r[0] for r in rows[1:]] == ["pos", "neg"]
    (tmp_path / "bare.csv").write_text(f'"{good}"\n"{bad}"\n')
    assert predict_file(run, tmp_path / "bare.csv", tmp_path / "out.csv", header=False) == 2
    assert (tmp_path / "out.csv").read_text() == predicted
    with pytest.raises(DataError, match=r"bare\.csv: no column named 'text' in the header row "
                       r"\(A great, lovely film\); this run reads one text per sample"):  # fmt: skip
        predict_file(run, tmp_path / "bare.csv", tmp_path / "out.csv")  # never taken as a header
    (tmp_path / "two.csv").write_text(f'"{good}",x\n')
    with pytest.raises(DataError, match=r"two\.csv: 2 columns; with --no-header this run reads "
                       r"a file of texts in one column"):  # fmt: skip
        predict_file(run, tmp_path / "two.csv", tmp_path / "out.csv", header=False)
    np.savez(tmp_path / "empty.npz", x=np.array([], dtype=str))
    with pytest.raises(DataError, match=r"empty\.npz: the array holds no texts"):
        predict_file(run, tmp_path / "empty.npz", tmp_path / "out.csv")
    np.savez(tmp_path / "objects.npz", x=np.array([good, bad], dtype=object))
    with pytest.raises(DataError, match=r"objects\.npz holds an object array, which is not read "
                       r".*x=np\.array\(texts, dtype=str\)"):  # fmt: skip
        predict_file(run, tmp_path / "objects.npz", tmp_path / "out.csv")
    with pytest.raises(DataError, match=r"--no-header applies to CSV files; a \.txt has no"):
        predict_file(run, tmp_path / "new.txt", tmp_path / "out.csv", header=False)
    with pytest.raises(DataError, match=r"new\.txt: a \.txt file holds texts, but this run's "
                       r"preprocessing does not start from text; a run reads texts when it was "
                       r"trained on them \(data\.output: text, then tokenize\) or on word ids "
                       r"it can index them by \(imdb with source: raw\)"):  # fmt: skip
        read_inputs(tmp_path / "new.txt", None)  # what a run on numbers reads
    np.savez(tmp_path / "ids.npz", x=np.arange(6).reshape(2, 3))
    with pytest.raises(DataError, match=r"int64 values of shape \[2, 3\]; this run reads one "
                       r"text per sample \(a 1-D array of strings\)"):  # fmt: skip
        predict_file(run, tmp_path / "ids.npz", tmp_path / "out.csv")


INDEX_OPTIONS = [
    {}, {"num_words": 9}, {"num_words": 9, "skip_top": 2}, {"num_words": None, "skip_top": 4},
    {"start_char": None}, {"oov_char": None, "num_words": 9}, {"index_from": 0, "num_words": 5},
    {"index_from": 0, "start_char": None, "oov_char": None, "num_words": 6, "skip_top": 3},
    {"num_words": 2}, {"start_char": 5, "oov_char": 7, "index_from": 10, "num_words": 15},
]  # fmt: skip


@pytest.mark.parametrize("options", INDEX_OPTIONS)
def test_new_reviews_are_indexed_as_the_training_reviews_were(
    options: dict[str, Any], tmp_path: Path
) -> None:
    """The raw source keeps its training words: the same texts, encoded again for predict,
    give the ids the dataset gave, in the training and the test reviews, whatever Keras's
    index options say."""
    archive(tmp_path, per_class=6)
    cfg = config_from_data(text_config(tmp_path, data={
        "dataset": "imdb", "source": "raw", "path": str(tmp_path), **options}))  # fmt: skip
    data = load_data(cfg)
    texts = load_data(config_from_data(text_config(tmp_path)))  # the same order, as texts
    assert data.vocabulary is not None and data.test_split is not None and texts.test_split
    source = DATASETS.get("imdb")(cfg.data)
    for ids, text in ((data.train.x, texts.train.x),
                      (data.test_split.unseal().x, texts.test_split.unseal().x)):  # fmt: skip
        encoded = source.encode_texts(text, data.vocabulary)
        assert [row.tolist() for row in encoded] == [row.tolist() for row in ids]


def test_a_new_review_is_indexed_by_rank_with_keras_marks(tmp_path: Path) -> None:
    archive(tmp_path, per_class=6)
    cfg = config_from_data(text_config(tmp_path, data={
        "dataset": "imdb", "source": "raw", "path": str(tmp_path), "num_words": 9,
        "skip_top": 2}))  # fmt: skip
    vocabulary = load_data(cfg).vocabulary
    assert vocabulary is not None and len(vocabulary) == 9 - 3 - 1  # ranks 1-5: ids 4-8 < 9
    first, fifth = vocabulary[0], vocabulary[4]
    (new,) = DATASETS.get("imdb")(cfg.data).encode_texts(
        np.array([f"Zebra {first.upper()} {fifth}<br />"]), vocabulary
    )
    # the start mark 1 is below skip_top 2, so oov_char 2, as in Keras; zebra was never seen;
    # ranks 1 and 5 shifted by index_from 3
    assert new.tolist() == [2, 2, 4, 8]


def test_a_run_on_word_ids_predicts_on_new_texts(tmp_path: Path) -> None:
    """Before, a run on the raw reviews' word ids (every shipped IMDB config) asked for
    numbers: it kept no words to index a new review by."""
    archive(tmp_path)
    cfg = text_config(
        tmp_path, data={"dataset": "imdb", "source": "raw", "path": str(tmp_path),
                        "num_words": 14},
        preprocess=[{"multi_hot": 14}],
        model={"layers": [{"dense": 4}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
        optimizer={"name": "rmsprop", "lr": 0.01},
        train={"epochs": 40, "batch_size": 16, "progress": "none"},
    )  # fmt: skip
    run = run_experiment(config_from_data(cfg), tmp_path / "runs").run_dir
    saved = torch.load(run / "checkpoint.pt", weights_only=True)["vocabulary"]
    assert len(saved) == 14 - 3 - 1 and {"superb", "awful"} <= set(saved)
    good, bad = "Great, superb and great", "Dull and boring, awful plot"
    predicted = _predicted_three_ways(run, tmp_path, good, bad, f"{good}\n{bad}\n".encode())
    assert [line.split(",")[0] for line in predicted.splitlines()[1:]] == ["pos", "neg"]


def test_token_ids_beyond_the_table_only_in_validation_rows_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every training and validation row is checked before the run directory exists (the
    check read a 64-row sample, and the validation rows stopped the first epoch with an
    IndexError from the embedding, then left a failed run)."""
    x = np.random.default_rng(0).integers(0, 5, size=(100, 4))
    x[90:, 0] = 9  # only among the last rows, which validate
    monkeypatch.setattr(preflight, "CHECKED_ROWS", 16)  # checked 16 rows at a time
    np.savez(tmp_path / "ids.npz", x=x, y=np.arange(100) % 2)
    cfg = tiny_config(
        task="binary", loss="binary_crossentropy", preprocess=[], metrics=["accuracy"],
        data={"dataset": "npz", "path": str(tmp_path / "ids.npz"), "test_fraction": 0},
        model={"layers": [{"embedding": {"input_dim": 5, "output_dim": 2}}, "flatten",
                          {"dense": {"units": 1, "activation": "sigmoid"}}]},
        evaluation={"validation": {"last_fraction": 0.2}},
    )  # fmt: skip
    with pytest.raises(DataError, match=r"token id 9, outside the embedding layer's 0\.\.4; "
                       r"set input_dim: 10"):  # fmt: skip
        run_experiment(config_from_data(cfg), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    cfg["model"]["layers"][0]["embedding"]["input_dim"] = 10
    run = run_experiment(config_from_data(cfg), tmp_path / "runs").run_dir
    np.savez(tmp_path / "new.npz", x=np.array([[1, 2, 3, 12]]))  # predict: the same check
    with pytest.raises(DataError, match=r"token id 12, outside the embedding layer's 0\.\.9"):
        predict_file(run, tmp_path / "new.npz", tmp_path / "p.csv")
