"""Facts read off a sentence: numbers normalised across the ways Chinese and English write
them, change words by direction, negation, clauses, and the clause check built on them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.facts import (
    Support,
    check_clause,
    directions,
    negated,
    parse_number,
    quantities,
    quantity_supported,
    split_clauses,
)

PRICE = (
    "随着模型算力成本的下降,通义千问三款主力模型再次大幅降价,最高降幅 85%,每百万 tokens 的"
    "价格低至三毛钱,这将大幅降低企业、开发者使用大模型的门槛,推动更多模型上的创新。"
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("36", 36),
        ("4,000", 4000),
        ("4000万", 4e7),
        ("1060 亿", 1.06e11),
        ("1.2亿", 1.2e8),
        ("三千万", 3e7),
        ("十五", 15),
        ("二十", 20),
        ("一亿五千万", 1.5e8),
        ("一万亿", 1e12),
        ("二〇二二", 2022),
        ("三点五", 3.5),
    ],
)
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("价格低至三毛钱", [(0.3, "yuan")]),
        ("价格低至0.3元", [(0.3, "yuan")]),
        ("三块钱", [(3, "yuan")]),
        ("下载量超过4000万", [(4e7, "")]),
        ("四千万", [(4e7, "")]),
        ("十分之一,甚至是百分之一", [(0.1, "ratio"), (0.01, "ratio")]),
        ("最高降幅 85%", [(0.85, "ratio")]),
        ("百分之八十五", [(0.85, "ratio")]),
        ("下降了近9成", [(0.9, "ratio")]),
        ("提升十余倍", [(10, "times")]),
        ("1060 亿美元", [(1.06e11, "usd")]),
        ("$1.5 billion", [(1.5e9, "usd")]),
        ("36 percent", [(0.36, "ratio")]),
        ("40 million", [(4e7, "")]),
        ("每百万 tokens", [(1e6, "")]),
        ("每千tokens", [(1e3, "")]),
    ],
)
def test_quantities_are_normalised(text: str, found: list[tuple[float, str]]) -> None:
    assert [(pytest.approx(q.value), q.kind) for q in quantities(text)] == found


@pytest.mark.parametrize(
    "text",
    ["通义千问一直在统一", "这十分重要", "万一失败", "百度和千问", "一成不变", "进一步成为第一"],
)
def test_numeral_characters_inside_words_are_not_numbers(text: str) -> None:
    assert quantities(text) == []


def chinese(n: int) -> str:
    """``n`` (below 10^8) in Chinese numerals, the way a model writes it: 二万零五 = 20005."""

    def four(x: int) -> str:
        out, zero = "", False
        for digit, unit in zip(f"{x:04d}", "千百十 ", strict=True):
            if digit == "0":
                zero = bool(out)
                continue
            out += ("零" if zero else "") + "零一二三四五六七八九"[int(digit)] + unit.strip()
            zero = False
        return out

    high, low = divmod(n, 10_000)
    text = f"{four(high)}万" if high else ""
    if low:
        text += ("零" if high and low < 1000 else "") + four(low)
    return text


@given(st.integers(min_value=1, max_value=99_999_999))
def test_chinese_numerals_read_back(n: int) -> None:
    assert parse_number(chinese(n)) == n


@given(st.integers(min_value=1, max_value=99_999), st.sampled_from(["万", "亿"]))
def test_arabic_number_with_magnitude(n: int, unit: str) -> None:
    [q] = quantities(f"共{n}{unit}个")
    assert q.value == pytest.approx(n * (1e4 if unit == "万" else 1e8))


def test_same_value_written_differently_is_supported_and_other_kinds_are_not() -> None:
    source = quantities(PRICE)
    assert quantity_supported(quantities("0.3元")[0], source)
    assert quantity_supported(quantities("百分之八十五")[0], source)
    assert quantity_supported(quantities("降幅85")[0], source)  # a bare 85 for 85%
    assert not quantity_supported(quantities("三块钱")[0], source)  # 3 yuan, not 3 models
    assert not quantity_supported(quantities("3倍")[0], source)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("再次大幅降价", {"down"}),
        ("提高企业的门槛", {"up"}),
        ("业绩稳定增长,但增速持续放缓", {"up", "down"}),
        ("较去年同期激增50%", {"up"}),
        ("Prices fell by 85%", {"down"}),
        ("an enterprise executive", set()),  # "rise" and "cut" inside other words
    ],
)
def test_directions(text: str, expected: set[str]) -> None:
    assert directions(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("阿里云并没有透露芯片情况", True),
        ("表现并不出色", True),
        ("并未排名第一", True),
        ("不是应用型平台", True),
        ("业绩不断增长,不仅如此", False),
        ("未来云业务的竞争", False),
        ("The articles do not say", True),
    ],
)
def test_negation(text: str, expected: bool) -> None:
    assert negated(text) is expected


def test_clauses_split_outside_quotes_and_join_back() -> None:
    sentence = "张勇说,“第一,让算力更普惠;第二,让AI更普及。”这是目标,也是承诺。"
    clauses = split_clauses(sentence)
    assert "".join(clauses) == sentence
    assert clauses == ["张勇说,", "“第一,让算力更普惠;第二,让AI更普及。”这是目标,", "也是承诺。"]


SUPPORT = Support((PRICE,), "通义千问降价后每百万tokens多少钱?")


@pytest.mark.parametrize(
    ("clause", "failure"),
    [
        ("每百万tokens的价格低至三毛钱", None),
        ("通义千问最高降幅为百分之八十五", None),
        ("每百万tokens的价格低至三块钱", "number '三块钱'"),
        ("通义千问三款主力模型再次大幅涨价", "direction"),
        ("这将大幅提高企业使用大模型的门槛", "direction"),
        ("通义千问并没有降价", "negation added"),
        ("腾讯云的模型再次大幅降价", "name '腾讯'"),
        ("阿里云将向所有人永久免费开放全部模型", "claim"),
        ("张勇说“价格大幅降低”", "quotation"),
        ("模型训练数据存储与对象存储服务打通", "words"),
    ],
)
def test_check_clause(clause: str, failure: str | None) -> None:
    problem = check_clause(clause, SUPPORT)
    if failure is None:
        assert problem is None
    else:
        assert problem is not None and failure in problem


def test_question_supports_names_but_not_numbers() -> None:
    support = Support(("价格低至三毛钱。",), "张勇说2025年的价格是多少?")
    assert check_clause("张勇说价格低至三毛钱", support) is None
    assert check_clause("2025年价格低至三毛钱", support) == "number '2025' not in the source"
