"""IMDB reviews and Reuters newswires as word-index sequences, with ``keras.datasets`` semantics.

Two sources give the same arrays: ``keras`` reads ``imdb.npz`` (sequences already indexed by
word frequency), ``raw`` reads the ``aclImdb`` reviews (the tarball or its extracted folder),
tokenizes them and ranks words by their frequency in the *training* reviews only, so no test
text shapes the vocabulary. Either way ``num_words``, ``skip_top``, ``maxlen``, ``start_char``,
``oov_char`` and ``index_from`` then act exactly as in Keras, and the seed-113 shuffle matches.

``output: text`` (raw source only) hands over each review's text instead, in the same order, for
the ``tokenize`` step (Keras ``Tokenizer``, DLwP 6.1.3), which is then fitted per training split.
"""

from __future__ import annotations

import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
from pydantic import Field
from pydantic import model_validator

from dlrun.config.base import FilePath
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DatasetConfig
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.checksums import file_digest
from dlrun.data.checksums import note
from dlrun.data.derived import cached_arrays
from dlrun.data.download import Resource
from dlrun.data.download import cache_root
from dlrun.data.keras_npz import KERAS_ORIGIN
from dlrun.data.keras_npz import read_npz
from dlrun.data.locate import locate
from dlrun.data.ragged import Ragged
from dlrun.errors import DataError

RAW_ARCHIVE = "aclImdb_v1.tar.gz"
_REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
SHUFFLE_SEED = 113
# The labeled reviews of the original tarball repacked without unsup/ and the .feat files: all
# that the raw source reads (the dlrun development mirror holds this copy).
ACLIMDB_LABELED_ONLY = (
    "fb9e98def6f32a036a2e322097f73d164ce865e60dabdf4b4547ecc62679aae1",
    "the labeled reviews only, repacked without unsup/ and the .feat files",
)


def tokenize(text: str) -> list[str]:
    """Lower-case words; HTML line breaks dropped, apostrophe contractions kept whole."""
    return _TOKEN.findall(text.replace("<br />", " ").lower())


def _raw_reviews(path: Path) -> Iterator[tuple[str, str, str, str]]:
    """``(split, label, name, text)`` per review, from the tarball or an extracted folder."""
    if path.is_dir():
        root = path if (path / "aclImdb").is_dir() else path.parent
        for file in sorted((root / "aclImdb").glob("*/*/*.txt")):
            relative = file.relative_to(root).as_posix()
            match = _REVIEW.match(relative)
            if match:
                yield match[1], match[2], relative, file.read_text(encoding="utf-8")
        return
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                match = _REVIEW.search(member.name)
                handle = archive.extractfile(member) if member.isfile() and match else None
                if match and handle is not None:
                    yield match[1], match[2], member.name, handle.read().decode("utf-8")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def word_index_from_training(texts: list[list[str]]) -> dict[str, int]:
    """Rank 1 for the most frequent training word (ties in alphabetical order), as Keras's."""
    counts = Counter(word for words in texts for word in words)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {word: rank for rank, (word, _) in enumerate(ranked, start=1)}


def read_raw_texts(path: Path) -> dict[str, list[tuple[str, str]]]:
    """``(label, text)`` per review under ``train`` and ``test``, files in name order."""
    parts: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for split, label, _, text in sorted(_raw_reviews(path), key=lambda r: r[:3]):
        parts[split].append((label, text))
    if not parts["train"] or not parts["test"]:
        raise DataError(f"{path} holds no aclImdb/train and aclImdb/test reviews")
    return parts


def _labels(rows: list[tuple[str, Any]]) -> np.ndarray:
    return np.array([label == "pos" for label, _ in rows], dtype=np.int64)


IndexedSplits = tuple[Ragged, np.ndarray, Ragged, np.ndarray]  # x_train, y_train, x_test, y_test
RAW_CACHE_FORMAT = 1  # raise when tokenize or the word ranking changes


def read_raw(path: Path) -> tuple[IndexedSplits, list[str]]:
    """Index sequences (1 = most frequent training word) and 0/1 labels, files in name order,
    and the training words in the order of their indices.

    Reading and tokenizing the 50,000 reviews takes 10 s or more; an archive's result is kept
    in dlrun's cache under the archive's SHA-256 (hashed once per process, and already for
    the checksum note of a mirror copy: 0.1 s for 84 MB), and read back in a fraction of a
    second. An extracted folder is read every time.
    """
    if path.is_dir():
        return _index_raw(path)
    name = f"raw-v{RAW_CACHE_FORMAT}-{file_digest(path)[:16]}.npz"
    names = ("x_train", "x_train_lengths", "y_train", "x_test", "x_test_lengths", "y_test",
             "words")  # fmt: skip

    def index() -> dict[str, np.ndarray]:
        (x_train, y_train, x_test, y_test), words = _index_raw(path)
        arrays = (x_train.values.astype(np.int32), x_train.lengths, y_train,
                  x_test.values.astype(np.int32), x_test.lengths, y_test,
                  np.frombuffer("\n".join(words).encode(), dtype=np.uint8))  # fmt: skip
        return dict(zip(names, arrays, strict=True))

    def consistent(a: dict[str, np.ndarray]) -> bool:
        return all(
            len(a[f"x_{split}_lengths"]) == len(a[f"y_{split}"])
            and int(a[f"x_{split}_lengths"].sum()) == len(a[f"x_{split}"])
            for split in ("train", "test")
        )

    a = cached_arrays(cache_root() / "imdb" / name, names, index, consistent)  # ranks fit 32 bits
    splits = (Ragged(a["x_train"].astype(np.int64), a["x_train_lengths"]), a["y_train"],
              Ragged(a["x_test"].astype(np.int64), a["x_test_lengths"]), a["y_test"])  # fmt: skip
    return splits, a["words"].tobytes().decode().split("\n")


def _index_raw(path: Path) -> tuple[IndexedSplits, list[str]]:
    texts = read_raw_texts(path)
    parts = {split: [(label, tokenize(text)) for label, text in rows]
             for split, rows in texts.items()}  # fmt: skip
    index = word_index_from_training([words for _, words in parts["train"]])

    def encode(rows: list[tuple[str, list[str]]]) -> tuple[Ragged, np.ndarray]:
        return index_words([words for _, words in rows], index), _labels(rows)

    return (*encode(parts["train"]), *encode(parts["test"])), list(index)


def index_words(texts: list[list[str]], index: dict[str, int]) -> Ragged:
    """Each text's words by their rank in ``index``; a word it lacks (a test-only word, a
    word of a new review) ranks after every ranked one, beyond any num_words: oov_char."""
    unknown = len(index) + 1
    return Ragged.from_lists([[index.get(w, unknown) for w in words] for words in texts])


INDEX_OPTIONS = ("num_words", "skip_top", "maxlen", "start_char", "oov_char", "index_from")


class WordIndexConfig(DatasetConfig):
    """Keras's word-index options, shared by IMDB and Reuters."""

    path: FilePath | None = None
    num_words: int | None = Field(default=None, gt=0)
    skip_top: int = Field(default=0, ge=0)
    maxlen: int | None = Field(default=None, gt=0)
    start_char: int | None = 1
    oov_char: int | None = 2
    index_from: int = Field(default=3, ge=0)


def keras_encode(sequences: Ragged, config: WordIndexConfig) -> Ragged:
    """Apply ``index_from``, ``start_char``, ``num_words``/``skip_top`` and ``oov_char``."""
    c = config
    shifted = Ragged(sequences.values + c.index_from, sequences.lengths)
    if c.start_char is not None:
        shifted = shifted.prepend(c.start_char)
    values = shifted.values
    limit = c.num_words or (int(values.max()) if len(values) else 0) + 1
    inside = (values >= c.skip_top) & (values < limit)
    if c.oov_char is not None:
        return Ragged(np.where(inside, values, c.oov_char), shifted.lengths)
    return shifted.keep(inside)


def _shuffle_order(size: int, rng: np.random.RandomState) -> np.ndarray:
    order = np.arange(size)
    rng.shuffle(order)
    return order


@DATASETS.register("imdb")
class Imdb(DataSource):
    """50,000 reviews, 25,000 train / 25,000 test, half positive (DLwP 3.4)."""

    class Config(WordIndexConfig):
        source: Literal["keras", "raw"] = "keras"
        output: Literal["sequences", "text"] = Field(
            default="sequences",
            description="word-index sequences, or (source: raw) each review's text as written, "
            "for a tokenize step",
        )

        @model_validator(mode="after")
        def _text_from_raw_reviews(self) -> Imdb.Config:
            if self.output == "sequences":
                return self
            if self.source != "raw":
                raise ValueError("output: text needs source: raw (imdb.npz holds word indices)")
            defaults = WordIndexConfig.model_fields
            changed = [name for name in INDEX_OPTIONS
                       if getattr(self, name) != defaults[name].default]  # fmt: skip
            if changed:
                raise ValueError(
                    f"{', '.join(changed)} shape word-index sequences, not text; with output: "
                    "text use the tokenize step's num_words and pad_sequences' maxlen"
                )
            return self

    config: Config
    resources = (
        Resource("imdb.npz", KERAS_ORIGIN + "imdb.npz",
                 "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f", 17464789),
        Resource("imdb_word_index.json", KERAS_ORIGIN + "imdb_word_index.json", None, 1641221),
        Resource(RAW_ARCHIVE, "https://ai.stanford.edu/~amaas/data/sentiment/" + RAW_ARCHIVE,
                 "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe", 84125825,
                 variant="raw", repackagings=(ACLIMDB_LABELED_ONLY,)),
    )  # fmt: skip

    def load(self, context: LoadContext) -> LoadedData:
        c = self.config
        if c.output == "text":
            return self._texts(read_raw_texts(locate("imdb", self.resources[2], c.path)))
        vocabulary = None
        if c.source == "raw":
            archive = locate("imdb", self.resources[2], c.path)
            (x_train, y_train, x_test, y_test), ranked = read_raw(archive)
            vocabulary = ranked[: self._ranks_kept(len(ranked))]
        else:
            npz = locate("imdb", self.resources[0], c.path)
            x_train, y_train, x_test, y_test = read_npz_pickled(str(npz))
        rng = np.random.RandomState(SHUFFLE_SEED)  # Keras shuffles train, then test, from one rng
        order = _shuffle_order(len(x_train), rng)
        x_train, y_train = x_train.take(order), y_train[order]
        order = _shuffle_order(len(x_test), rng)
        x_test, y_test = x_test.take(order), y_test[order]
        x_train, x_test = keras_encode(x_train, c), keras_encode(x_test, c)
        if c.maxlen is not None:
            x_train, y_train = _drop_longer(x_train, y_train, c.maxlen, "training reviews")
            x_test, y_test = _drop_longer(x_test, y_test, c.maxlen, "test reviews")
        words = f"{c.num_words} most frequent words" if c.num_words else "all words"
        description = (f"IMDB reviews ({c.source} source), {len(x_train)} train / {len(x_test)} "
                       f"test, {words}")  # fmt: skip
        train = Arrays(x_train.rows(), y_train)
        return LoadedData(train, Arrays(x_test.rows(), y_test), description, None, ["neg", "pos"],
                          vocabulary=vocabulary)  # fmt: skip

    def _ranks_kept(self, ranked: int) -> int:
        """How many of the ranked words become ids below num_words (rank + index_from <
        num_words): the rest, like any word never ranked, become oov_char, so predict needs
        only these."""
        c = self.config
        if c.num_words is None:
            return ranked
        return max(0, min(ranked, c.num_words - c.index_from - 1))

    def encode_texts(self, texts: np.ndarray, vocabulary: list[str]) -> np.ndarray:
        """New reviews indexed as the training ones were (the raw source's ids): dlrun's
        tokenizer, the training words' ranks, then Keras's shift, start mark and oov_char.
        data.maxlen is not applied: it drops long reviews, and each text needs a prediction."""
        index = {word: rank for rank, word in enumerate(vocabulary, start=1)}
        ranked = index_words([tokenize(str(text)) for text in texts], index)
        return keras_encode(ranked, self.config).rows()

    def _texts(self, parts: dict[str, list[tuple[str, str]]]) -> LoadedData:
        """The reviews' text as written (HTML breaks included, as DLwP 6.1.3 reads them), in
        the seed-113 order of the sequences; the tokenize step fits on the training part."""
        rng = np.random.RandomState(SHUFFLE_SEED)
        splits = []
        for rows in (parts["train"], parts["test"]):
            order = _shuffle_order(len(rows), rng)
            array = np.empty(len(rows), dtype=object)
            array[:] = [rows[i][1] for i in order]
            splits.append(Arrays(array, _labels(rows)[order]))
        description = (f"IMDB reviews (raw text), {len(splits[0])} train / {len(splits[1])} "
                       "test")  # fmt: skip
        return LoadedData(splits[0], splits[1], description, None, ["neg", "pos"])


def _drop_longer(x: Ragged, y: np.ndarray, maxlen: int, part: str) -> tuple[Ragged, np.ndarray]:
    """Keras drops (does not truncate) sequences longer than ``maxlen``; how many of the
    ``part`` are left is said in the run's notes."""
    keep = np.flatnonzero(x.lengths <= maxlen)
    if len(x) and not len(keep):
        raise DataError(
            f"data.maxlen is {maxlen}, but every sequence is longer (the shortest has "
            f"{int(x.lengths.min())} words, start mark included); raise maxlen, or cut the "
            "sequences with pad_sequences' maxlen instead"
        )
    if len(keep) < len(x):
        note(f"data.maxlen {maxlen} keeps {len(keep):,} of the {len(x):,} {part} (longer ones "
             "are dropped, as Keras does; pad_sequences' maxlen cuts them instead)")  # fmt: skip
    return x.take(keep), y[keep]


def read_object_npz(path: str, names: tuple[str, ...]) -> list[np.ndarray]:
    """Arrays of index lists (Keras stores them as pickled object arrays, read without
    running code: see :func:`dlrun.data.keras_npz.read_npz`)."""
    arrays = read_npz(path, names)
    return [arrays[n] for n in names]


def read_npz_pickled(path: str) -> IndexedSplits:
    """Keras's ``imdb.npz``: index lists under x_train/y_train/x_test/y_test."""
    x_tr, y_tr, x_te, y_te = read_object_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    return (Ragged.from_lists(x_tr), y_tr.astype(np.int64), Ragged.from_lists(x_te),
            y_te.astype(np.int64))  # fmt: skip


REUTERS_TOPICS = ["cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing",
    "money-supply", "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude",
    "nat-gas", "cpi", "money-fx", "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin",
    "strategic-metal", "livestock", "retail", "ipi", "iron-steel", "rubber", "heat", "jobs", "lei",
    "bop", "zinc", "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog", "lead"]  # fmt: skip


@DATASETS.register("reuters")
class Reuters(DataSource):
    """11,228 Reuters newswires in 46 topics; Keras's seed-113 shuffle, then 80% train (DLwP 3.5)."""

    class Config(WordIndexConfig):
        test_split: float = Field(default=0.2, ge=0, lt=1)

    config: Config
    resources = (
        Resource("reuters.npz", KERAS_ORIGIN + "reuters.npz",
                 "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916", 2110848),
        Resource("reuters_word_index.json", KERAS_ORIGIN + "reuters_word_index.json", None, 550378),
    )  # fmt: skip

    def load(self, context: LoadContext) -> LoadedData:
        c = self.config
        xs, labels = read_object_npz(str(locate("reuters", self.resources[0], c.path)), ("x", "y"))
        order = _shuffle_order(len(xs), np.random.RandomState(SHUFFLE_SEED))
        x, y = keras_encode(Ragged.from_lists(xs).take(order), c), labels.astype(np.int64)[order]
        if c.maxlen is not None:
            x, y = _drop_longer(x, y, c.maxlen, "newswires")
        cut = int(len(x) * (1 - c.test_split))
        rows = x.rows()
        description = f"Reuters newswires, {cut} train / {len(x) - cut} test, 46 topics"
        return LoadedData(Arrays(rows[:cut], y[:cut]), Arrays(rows[cut:], y[cut:]),
                          description, None, REUTERS_TOPICS)  # fmt: skip


def decode(sequence: list[int], word_index: dict[str, int], index_from: int = 3) -> str:
    """Turn an encoded review back into words; reserved and unknown indices print as '?'."""
    words = {rank + index_from: word for word, rank in word_index.items()}
    return " ".join(words.get(int(i), "?") for i in sequence)
