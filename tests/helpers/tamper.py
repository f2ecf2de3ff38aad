"""Honest LLM replies about the bundled articles, and the same replies altered the ways a model
gets facts wrong, for the tamper suite (tests/test_llm_tamper.py).

Each honest sentence states only what one article sentence states, in the words a faithful
model would use. Each alteration changes one fact and names the words that carry the change:
a verified answer must not contain them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Honest:
    question: str
    sentence: str


@dataclass(frozen=True)
class Altered:
    kind: str
    honest: int  # index into HONEST: the question asked and the sentence altered
    sentence: str
    marker: str  # words only the altered sentence has


HONEST = [
    Honest(
        "阿里云2022年在中国云市场的份额是多少?", "阿里云在2022年占中国云市场份额的36%,排名第一。"
    ),
    Honest(
        "通义千问降价后每百万tokens多少钱?",
        "通义千问三款主力模型再次大幅降价,最高降幅85%,每百万tokens的价格低至三毛钱。",
    ),
    Honest(
        "张勇希望把在阿里云上训练一个模型的成本降低到多少?",
        "张勇希望在阿里云上训练一个模型的成本能够降低到现在的十分之一,甚至是百分之一。",
    ),
    Honest(
        "Qwen系列模型的全球下载量有多少?",
        "截至2024年9月中旬,阿里云开源模型Qwen系列的全球下载量已经超过4000万。",
    ),
    Honest(
        "过去十年阿里云的算力成本下降了多少?",
        "据周靖人介绍,过去十年里阿里云提供的算力成本下降了80%,存储成本下降了近9成。",
    ),
    Honest(
        "美国科技巨头上半年的资本支出有多少?",
        "仅上半年,微软、Alphabet、亚马逊和Meta的资本支出总额已突破1060亿美元,较去年同期激增50%。",
    ),
    Honest(
        "在ChatGPT的训练和运行过程中,哪家云平台表现出色?",
        "Azure在ChatGPT训练、运行过程中表现出色。",
    ),
    Honest(
        "磐久服务器能提供多大的扩展网络带宽?",
        "磐久服务器能够为客户提供最高3.2Tbps的扩展网络带宽。",
    ),
    Honest("阿里云透露了大模型使用的芯片吗?", "阿里云并没有透露大模型使用的芯片情况。"),
    Honest(
        "通用Universal实例的价格最多下降多少?",
        "通用Universal实例的价格对比上一代主售实例最高可下降40%。",
    ),
    Honest(
        "谁在阿里云峰会上公布了通义千问?",
        "在阿里云峰会上,周靖人正式公布了阿里云的大型语言模型产品通义千问。",
    ),
    Honest(
        "国内自研芯片能满足多少AI大模型研发需求?",
        "部分国内自研芯片基本也能满足60%-70%的AI大模型研发需求。",
    ),
]


def _alter(kind: str, honest: int, old: str, new: str, marker: str | None = None) -> Altered:
    sentence = HONEST[honest].sentence
    assert old in sentence, (old, sentence)
    return Altered(kind, honest, sentence.replace(old, new, 1), marker or new)


def _append(kind: str, honest: int, tail: str, marker: str) -> Altered:
    sentence = HONEST[honest].sentence.rstrip("。")
    return Altered(kind, honest, f"{sentence}{tail}", marker)


ALTERED = [
    # Arabic and Chinese numerals
    _alter("numeral", 0, "36%", "46%"),
    _alter("numeral", 0, "2022年", "2021年"),
    _alter("numeral", 1, "85%", "95%"),
    _alter("numeral", 2, "十分之一", "三分之一"),
    _alter("numeral", 3, "4000万", "5000万"),
    _alter("numeral", 4, "近9成", "近7成"),
    _alter("numeral", 4, "80%", "八成五", "八成五"),
    _alter("numeral", 5, "1060亿", "1600亿"),
    _alter("numeral", 7, "3.2Tbps", "6.4Tbps"),
    _alter("numeral", 9, "40%", "百分之四十五"),
    _alter("numeral", 11, "60%-70%", "80%-90%"),
    # units of magnitude
    _alter("magnitude", 3, "4000万", "4000亿"),
    _alter("magnitude", 5, "1060亿", "1060万"),
    _alter("magnitude", 2, "百分之一", "千分之一"),
    _alter("magnitude", 1, "每百万tokens", "每千tokens", "每千tokens"),
    # currency
    _alter("currency", 1, "三毛钱", "三块钱"),
    _alter("currency", 1, "三毛钱", "三元"),
    _alter("currency", 5, "1060亿美元", "1060亿元"),
    # negation added or dropped
    _alter("negation", 0, "排名第一", "并未排名第一", "并未"),
    _alter("negation", 6, "表现出色", "表现并不出色", "并不"),
    _alter("negation", 8, "并没有透露", "透露了", "透露了"),
    _alter("negation", 2, "能够降低", "不能降低", "不能"),
    _alter("negation", 3, "已经超过", "没有超过", "没有超过"),
    # antonyms
    _alter("antonym", 1, "降价", "涨价"),
    _alter("antonym", 4, "算力成本下降", "算力成本上升", "上升"),
    _alter("antonym", 5, "激增", "骤降"),
    _alter("antonym", 9, "下降", "上涨"),
    _alter("antonym", 2, "降低到", "提高到"),
    # swapped person or organisation
    _alter("swap", 2, "张勇", "吴泳铭"),
    _alter("swap", 4, "周靖人", "仓剑"),
    _alter("swap", 0, "阿里云", "腾讯云"),
    _alter("swap", 6, "Azure", "AWS"),
    _alter("swap", 10, "周靖人", "张勇"),
    _alter("swap", 5, "微软", "谷歌"),
    # appended claims
    _append("appended", 1, ",而且张勇表示阿里云将向所有人永久免费开放全部模型。", "永久免费"),
    _append("appended", 0, ",预计2025年份额将翻倍。", "翻倍"),
    _append("appended", 3, ",成为全球下载量最高的模型。", "下载量最高"),
    _append("appended", 7, ",并且比英伟达的方案快十倍。", "英伟达的方案"),
    # fabricated quotes
    _append("quote", 1, ",张勇说:“我们明年将把价格降到零。”", "降到零"),
    _append("quote", 10, ",他表示“通义千问已经全面超越GPT-4”。", "全面超越"),
    Altered("quote", 6, "仓剑说:“Azure是全球最好的云平台。”", "最好的云平台"),
]
