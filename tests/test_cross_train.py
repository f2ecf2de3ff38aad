"""Training the cross-encoder: a tiny real run (one layer, a dozen questions), its exported
file read back by the numpy runtime, the pairs it learns from, and the shipped file."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.answering.cross import e5file
from rag.answering.cross.encoder import MODELS_DIR, WEIGHTS, CrossEncoder
from rag.answering.qa_sets import load_sets, split
from rag.sentences import split_sentences

pytest.importorskip("torch")
pytest.importorskip("transformers")

from rag.answering.cross import train as cross_train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> cross_train.Trained:
    out = tmp_path_factory.mktemp("cross")
    return cross_train.train(out, layers=1, limit_questions=12, validation_questions=8)


def test_the_exported_file_scores_as_the_trained_model(trained: cross_train.Trained) -> None:
    import torch

    questions = ["岛原之乱于何时发生？", "中国的首都是哪里?"]
    sentences = ["1637年，居民群起反抗，史称岛原之乱。", "北京是中国的首都，也是政治文化中心。"]
    pairs = [(q, s) for q in questions for s in sentences]
    runtime = CrossEncoder(trained.path, e5file.load())
    shipped = np.array([runtime.score(q, [s])[0] for q, s in pairs])
    ids = [trained.tokenizer.pairs(q, [s], cross_train.MAX_LEN)[0] for q, s in pairs]
    with torch.no_grad():
        tuned = trained.model(*cross_train.collate(ids, e5file.load().vocabulary.pad)).numpy()
    np.testing.assert_allclose(shipped, tuned, atol=1e-2)
    assert np.ptp(tuned) > 1e-3  # the pairs are told apart at all


def test_the_file_holds_float16_weights_without_the_frozen_embeddings(
    trained: cross_train.Trained,
) -> None:
    from safetensors import safe_open

    with safe_open(str(trained.path), framework="numpy") as f:
        names = set(f.keys())
        assert f.get_tensor("l0.q.w").dtype == np.float16
        card = json.loads((f.metadata() or {})["card"])
    assert "emb.word" not in names
    assert {"emb.pos", "emb.type", "head.w", "head.b", "l0.fo.w"} <= names
    assert not any(n.startswith("l1.") for n in names)
    assert card == trained.card


def test_the_card_holds_the_run_and_its_validation(trained: cross_train.Trained) -> None:
    card = trained.card
    assert card["layers"] == 1 and card["max_len"] == 96 and card["seed"] == 20261129
    assert card["questions"] == 12
    assert card["pairs"] == sum(card["pairs_built"].values()) > 12
    assert card["steps"] == card["batches"] == -(-card["pairs"] // 16)  # one whole epoch
    assert card["split"]["train_questions"] > card["split"]["validation_questions"] > 0
    assert len(card["commit"]) >= 40
    validation = card["validation"]
    assert validation["questions"] == 8
    assert 0.0 <= validation["own_paragraph_top1"] <= 1.0
    assert 0.5 <= validation["e5_own_paragraph_top1"] <= 1.0  # e5 itself is no coin toss
    examples = validation["examples"]
    assert len(examples) == 6
    runtime = CrossEncoder(trained.path, e5file.load())
    for example in examples:
        logit = runtime.score(example["question"], [example["sentence"]])[0]
        assert logit == pytest.approx(example["logit"], abs=1e-3)


def test_pairs_are_the_gold_sentence_its_neighbours_and_a_sibling() -> None:
    train_side, _ = split(load_sets())
    pairs, questions = cross_train.build_pairs(train_side, random.Random(1), limit=30)
    again, _ = cross_train.build_pairs(train_side, random.Random(1), limit=30)
    assert pairs == again
    assert questions == 30 and sum(p.label for p in pairs) == 30
    items = {i.question: i for i in train_side.items}
    for pair in pairs:
        item = items[pair.question]
        para = train_side.paragraphs[item.paragraph]
        own = [para.text[s:e] for s, e in split_sentences(para.text)]
        start = item.answers[0][1]
        if pair.kind == "gold":
            assert pair.label == 1.0 and pair.sentence in own
            at = para.text.index(pair.sentence)
            assert at <= start < at + len(pair.sentence)
        elif pair.kind == "same_paragraph":
            assert pair.label == 0.0 and pair.sentence in own
            assert (
                not para.text.index(pair.sentence)
                <= start
                < para.text.index(pair.sentence) + len(pair.sentence)
            )
        else:
            siblings = [
                p.text
                for p in train_side.paragraphs.values()
                if (p.source, p.article) == (para.source, para.article) and p.id != para.id
            ]
            assert pair.label == 0.0 and pair.sentence not in own
            assert any(pair.sentence in text for text in siblings)


def test_without_torch_the_cli_names_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from rag.answering.cross.train import main\n"
        f"raise SystemExit(main(['--out', {str(tmp_path)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "pip install torch==2.13.0 transformers" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / WEIGHTS).exists()


def test_the_shipped_file_reproduces_its_card_and_beats_e5() -> None:
    path = MODELS_DIR / WEIGHTS
    encoder = CrossEncoder(path, e5file.load())
    validation = encoder.meta["validation"]
    assert validation["questions"] >= 250
    assert validation["own_paragraph_top1"] > validation["e5_own_paragraph_top1"]
    for example in validation["examples"]:
        logit = encoder.score(example["question"], [example["sentence"]])[0]
        assert logit == pytest.approx(example["logit"], abs=1e-3)
