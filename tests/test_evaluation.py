"""Answer metrics: CMRC 2018 short-answer scoring, sentence accuracy for both kinds of gold,
outcome counts, and the SQuAD bench end to end on a tiny set (real index, real e5; about 6 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.citations import Answer, Citation, ShortAnswer
from rag.cli import _print_table
from rag.evaluation import (
    Evidence,
    Question,
    answer_scores,
    cmrc_exact_match,
    cmrc_f1,
    cmrc_tokens,
    mean_present,
    outcome_of,
    sentence_correct,
    short_golds,
)

REPO = Path(__file__).parents[1]

# --- CMRC 2018 short-answer scoring -----------------------------------------------------------


def test_tokens_are_chinese_characters_and_whole_english_words() -> None:
    assert cmrc_tokens("阿里云Qwen2.5 72B模型") == ["阿", "里", "云", "qwen2.5", "72b", "模", "型"]
    assert cmrc_tokens("36%") == ["36", "%"]
    # The script's punctuation goes, with or without spaces around it; ASCII commas stay.
    assert cmrc_tokens("《三国志》，卷一") == ["三", "国", "志", "卷", "一"]
    assert cmrc_tokens("十分之一,百分之一") == [*"十分之一", ",", *"百分之一"]


@pytest.mark.parametrize(
    ("golds", "prediction", "em", "f1"),
    [
        pytest.param(["北京"], "北京", 1.0, 1.0, id="same"),
        # 2 of 5 predicted tokens, both gold tokens: P 0.4, R 1.0.
        pytest.param(["北京"], "北京天安门", 0.0, 2 * 0.4 / 1.4, id="longer"),
        pytest.param(["《三国志》"], "三国志。", 1.0, 1.0, id="punctuation removed"),
        pytest.param(["Storage for AI"], "storage for ai", 1.0, 1.0, id="case"),
        # English words count whole: 1 of 2 gold tokens, not 7 of 11 characters.
        pytest.param(["Qwen2.5 72B"], "Qwen2.5", 0.0, 2 / 3, id="english words whole"),
        # Overlap is the longest contiguous run (阿里巴巴), not the bag of shared characters.
        pytest.param(["阿里巴巴集团"], "集团阿里巴巴", 0.0, 2 / 3, id="contiguous"),
        pytest.param(["36%", "百分之三十六"], "36%", 1.0, 1.0, id="best of several golds"),
        pytest.param(["光荣和ω-force"], "光荣", 0.0, 2 * 1 * (2 / 4) / 1.5, id="partial"),
        pytest.param(["北京"], "上海", 0.0, 0.0, id="nothing shared"),
        pytest.param(["北京"], None, 0.0, 0.0, id="no short answer"),
    ],
)
def test_cmrc_scores(golds: list[str], prediction: str | None, em: float, f1: float) -> None:
    assert cmrc_exact_match(golds, prediction) == em
    assert cmrc_f1(golds, prediction) == pytest.approx(f1)


# --- answers built by hand --------------------------------------------------------------------

DOC = "a.txt"
TEXT = "标题\n\n阿里云在2022年占中国云市场36%的份额。张勇说,成本要降到十分之一。"


def _span(piece: str) -> tuple[int, int]:
    start = TEXT.index(piece)
    return start, start + len(piece)


def _answer(
    pieces: list[str], short: str | None = None, answerable: bool = True, outcome: str = "answered"
) -> Answer:
    citations = [Citation(i, DOC, "标题", p, *_span(p)) for i, p in enumerate(pieces, 1)]
    short_answer = ShortAnswer(short, DOC, *_span(short), 0.9) if short else None
    return Answer(
        question="?",
        answer="".join(f"{p}[{i}]" for i, p in enumerate(pieces, 1)) or "文中未提及。",
        citations=citations,
        answerable=answerable,
        mode="extractive",
        short_answer=short_answer,
        outcome=outcome,  # type: ignore[arg-type]
    )


SHARE_SENTENCE = "阿里云在2022年占中国云市场36%的份额。"
COST_SENTENCE = "张勇说,成本要降到十分之一。"


def _squad_question() -> Question:
    start, end = _span("36%")
    return Question(
        "s1", "阿里云的份额是多少?", "kept", True, "36%", [], [Evidence(DOC, "36%", start, end)]
    )


def _dev_question(quote: str = "占中国云市场36%的份额", answer: str = "36%(三成多)。") -> Question:
    start, end = _span(quote)
    return Question(
        "d1", "阿里云的份额是多少?", "numeric", True, answer, [Evidence(DOC, quote, start, end)]
    )


def test_sentence_accuracy_with_squad_gold_needs_the_whole_answer_span() -> None:
    q = _squad_question()
    assert sentence_correct(q, _answer([SHARE_SENTENCE]))
    assert not sentence_correct(q, _answer([COST_SENTENCE]))
    assert not sentence_correct(q, _answer(["阿里云在2022年占中国云市场3"]))  # cuts "36%"
    assert sentence_correct(q, _answer([COST_SENTENCE, SHARE_SENTENCE]))
    assert not sentence_correct(q, _answer([SHARE_SENTENCE], answerable=False))


def test_sentence_accuracy_with_evidence_quotes_needs_half_a_quote() -> None:
    q = _dev_question()  # the quote is 12 characters
    assert sentence_correct(q, _answer([SHARE_SENTENCE]))
    assert sentence_correct(q, _answer(["阿里云在2022年占中国云市场"]))  # 6 of 12
    assert not sentence_correct(q, _answer(["阿里云在2022年占中国云市"]))  # 5 of 12
    assert not sentence_correct(q, _answer([COST_SENTENCE]))


def test_written_gold_answers_lose_glosses_and_the_full_stop() -> None:
    assert short_golds(_dev_question(answer="低至三毛钱(0.3元)。")) == ["低至三毛钱"]
    assert short_golds(_dev_question(answer="微软的Azure。")) == ["微软的Azure"]
    assert short_golds(_dev_question(answer="August 2023.")) == []  # cannot match a Chinese span
    assert short_golds(_squad_question()) == ["36%"]


def test_answer_scores_measure_each_metric_where_it_applies() -> None:
    q = _squad_question()
    answered = answer_scores(q, _answer([SHARE_SENTENCE], short="36%"), {})
    assert answered["sentence_accuracy"] == answered["short_em"] == answered["short_f1"] == 1.0
    assert answered["short_coverage"] == 1.0 and answered["false_abstention"] == 0.0
    assert "abstention" not in answered
    assert 0.0 < answered["answer_f1"] < 1.0  # the whole sentence against "36%"

    no_short = answer_scores(q, _answer([SHARE_SENTENCE]), {})
    assert no_short["short_em"] == no_short["short_f1"] == no_short["short_coverage"] == 0.0

    abstained = answer_scores(q, _answer([], answerable=False, outcome="related"), {})
    assert abstained["false_abstention"] == 1.0 and abstained["sentence_accuracy"] == 0.0

    unanswerable = Question("u1", "腾讯云的份额?", "removed", False)
    scores = answer_scores(unanswerable, _answer([], answerable=False, outcome="none"), {})
    assert scores["abstention"] == 1.0
    assert not {"sentence_accuracy", "short_f1", "false_abstention"} & set(scores)

    dev = answer_scores(_dev_question(), _answer([SHARE_SENTENCE], short="36%"), {})
    assert dev["sentence_accuracy"] == dev["short_em"] == 1.0  # gold "36%(三成多)。" -> "36%"


def test_outcomes_are_counted_per_group() -> None:
    answers = [
        _answer([SHARE_SENTENCE]),
        _answer([], answerable=False, outcome="related"),
        _answer([], answerable=False, outcome="none"),
        _answer([], answerable=False),  # an old answer layer: abstains, outcome left default
    ]
    assert [outcome_of(a) for a in answers] == ["answered", "related", "none", "none"]
    rows = [(["kept"], {"x": 1.0}), (["kept"], {"x": 0.0}), (["removed"], {}), (["removed"], {})]
    table = mean_present(rows, [outcome_of(a) for a in answers])
    assert table["all"]["n"] == 4 and table["all"]["x"] == 0.5
    assert (table["kept"]["n_answered"], table["kept"]["n_related"]) == (1, 1)
    assert (table["removed"]["n_none"], table["removed"]["n_answered"]) == (2, 0)


def test_eval_table_prints_counts_as_integers(capsys: pytest.CaptureFixture[str]) -> None:
    _print_table("answers", {"all": {"n": 3, "short_f1": 0.5, "n_answered": 2, "n_none": 1}})
    header, row = capsys.readouterr().out.splitlines()[1:]
    assert header.split() == ["type", "n", "short_f1", "answered", "none"]
    assert row.split() == ["all", "3", "0.500", "2", "1"]


# --- the SQuAD bench on a tiny set ------------------------------------------------------------

PARAGRAPHS = {
    "大熊猫": [
        "大熊猫是中国特有的熊科动物,主要栖息在四川、陕西和甘肃的山区。成年大熊猫体长约一点五米。",
        "大熊猫的食物几乎全是竹子,每天要花十个小时以上进食,一天能吃下十几公斤竹子。",
        "卧龙自然保护区位于四川省汶川县,建于1963年,是最早保护大熊猫的保护区之一。",
    ],
    "长江": [
        "长江是亚洲第一长河,全长约六千三百公里,发源于青藏高原的唐古拉山脉。",
        "三峡大坝位于湖北省宜昌市,是世界上装机容量最大的水电站,于2006年全面建成。",
        "长江流域的上海港是世界上货物吞吐量最大的港口之一,位于长江入海口。",
    ],
}
QUESTIONS = [
    ("大熊猫", 0, "大熊猫主要栖息在哪些省份的山区?", "四川、陕西和甘肃"),
    ("大熊猫", 1, "大熊猫每天要花多长时间进食?", "十个小时以上"),
    ("大熊猫", 2, "卧龙自然保护区建于哪一年?", "1963年"),
    ("长江", 0, "长江全长约多少公里?", "六千三百公里"),
    ("长江", 1, "三峡大坝位于哪个城市?", "湖北省宜昌市"),
    ("长江", 2, "上海港位于长江的什么位置?", "长江入海口"),
]


def _tiny_squad(path: Path) -> Path:
    data = []
    for title, paragraphs in PARAGRAPHS.items():
        entries = []
        for p, context in enumerate(paragraphs):
            qas = [
                {
                    "id": f"{title}-{p}",
                    "question": q,
                    "answers": [{"text": a, "answer_start": context.index(a)}],
                }
                for t, n, q, a in QUESTIONS
                if (t, n) == (title, p)
            ]
            entries.append({"context": context, "qas": qas})
        data.append({"title": title, "paragraphs": entries})
    path.write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")
    return path


def test_squad_bench_runs_a_limited_set_end_to_end(tmp_path: Path, rag_env: dict[str, str]) -> None:
    squad = _tiny_squad(tmp_path / "tiny_squad.json")
    out, records = tmp_path / "result.json", tmp_path / "records.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "squad_eval.py"),
            "--file", str(squad),
            "--work", str(tmp_path / "work"),
            "--limit", "4",
            "--out", str(out),
            "--records", str(records),
            "-q",
        ],
        cwd=REPO,
        env=rag_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert (report["paragraphs"], report["removed_paragraphs"], report["questions"]) == (6, 2, 4)
    corpus = sorted(p.name for p in (tmp_path / "work" / "corpus").iterdir())
    assert len(corpus) == 4  # the removed paragraphs are not in the corpus
    summary = report["summary"]
    assert {"passage_hit@5", "sentence_accuracy", "short_f1", "not_found_removed"} <= set(summary)
    rates = [v for k, v in summary.items() if v is not None and not k.startswith("latency")]
    assert all(0.0 <= v <= 1.0 for v in rates)
    assert summary["latency_p50_ms"] > 0
    rows = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert row["outcome"] in {"answered", "related", "none"}
        assert ("passage_hit@5" in row) == (row["type"] == "kept")
    # Four paragraphs, a few hundred characters: every kept question's passage is retrieved.
    if report["by_type"].get("kept"):
        assert report["by_type"]["kept"]["passage_hit@5"] == 1.0
    assert "sentence_accuracy" in result.stdout
