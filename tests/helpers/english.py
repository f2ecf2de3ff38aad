"""Honest English replies about the (Chinese) bundled articles, and the same replies altered the
ways a model gets facts wrong or invents them: for the cross-language checks in rag/verify.py
(tests/test_verify_english.py) and the calibration of its threshold.

Each honest sentence states, in English, only what one article sentence states; each question
is asked in English. An altered sentence changes one fact or states something no passage says.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class English:
    question: str
    sentence: str


HONEST = [
    English(
        "What was Alibaba Cloud's share of China's cloud market in 2022?",
        "Alibaba Cloud held 36% of China's cloud market in 2022, ranking first.",
    ),
    English(
        "How much do Tongyi Qianwen's main models cost per million tokens after the price cut?",
        "After the price cut of up to 85%, the price fell to as low as 0.3 yuan per million "
        "tokens.",
    ),
    English(
        "How much does Zhang Yong want to cut the cost of training a model on Alibaba Cloud?",
        "Zhang Yong hopes the cost of training a model on Alibaba Cloud can fall to one tenth "
        "of today's, or even one hundredth.",
    ),
    English(
        "How many downloads do the Qwen models have worldwide?",
        "By mid-September 2024, the Qwen series had been downloaded more than 40 million times "
        "worldwide.",
    ),
    English(
        "How much did Alibaba Cloud's computing cost fall over the past ten years?",
        "Over the past ten years, the cost of computing power at Alibaba Cloud fell by 80%.",
    ),
    English(
        "How much did the US tech giants spend on capital expenditure in the first half?",
        "In the first half, the capital expenditure of Microsoft, Alphabet, Amazon and Meta "
        "exceeded 106 billion US dollars, up 50% from a year earlier.",
    ),
    English(
        "Which cloud platform performed well in training and running ChatGPT?",
        "Azure performed well in the training and running of ChatGPT.",
    ),
    English(
        "How much network bandwidth can the Panjiu server provide?",
        "The Panjiu server can provide up to 3.2 Tbps of scale-out network bandwidth.",
    ),
    English(
        "In which month and year did Alibaba Cloud open-source its own large model?",
        "In August 2023, Alibaba Cloud open-sourced its self-developed large model.",
    ),
    English(
        "What share of the AI model development demand can domestic chips meet?",
        "Some domestic chips can basically meet 60%-70% of the demand for AI model development.",
    ),
    English(
        "Which research firm's data did the 2023 article cite for China's cloud market?",
        "The article cited data from the market research firm Canalys.",
    ),
    English(
        "What can Tongyi Qianwen do with unread group chats in DingTalk?",
        "Tongyi Qianwen can automatically summarize the key points of unread group chats.",
    ),
]

# (index into HONEST, altered sentence)
ALTERED = [
    (0, "Alibaba Cloud held 46% of China's cloud market in 2022, ranking first."),
    (1, "After the price cut, the price fell to as low as 3 yuan per million tokens."),
    (1, "The price of the main models rose by 85%."),
    (3, "By mid-September 2024, the Qwen series had been downloaded more than 50 million times."),
    (4, "Over the past ten years, the cost of computing power at Alibaba Cloud rose by 80%."),
    (5, "The capital expenditure of Microsoft, Alphabet, Amazon and Meta exceeded 160 billion "
        "US dollars."),
    (6, "Azure did not perform well in the training and running of ChatGPT."),
    (7, "The Panjiu server can provide up to 6.4 Tbps of network bandwidth."),
    (8, "In August 2021, Alibaba Cloud open-sourced its self-developed large model."),
    (9, "Some domestic chips can meet 90% of the demand for AI model development."),
    (0, "Alibaba Cloud built a data center on Mars."),
    (1, "The models are free for everyone forever."),
    (6, "Amazon's cloud ran out of GPUs during the training of ChatGPT."),
]  # fmt: skip

# Sentences as the 1.5B model wrote them: English with the Chinese name glossed.
GLOSSED = [
    English(
        "When Tongyi Qianwen (通义千问) opened invitation-code applications for its test, how long "
        "did the application window stay open?",
        "The application window for the invitation-code applications of Tongyi Qianwen "
        "(通义千问) opened for only half a day.",
    ),
]

# (question, English sentence) pairs that deny what their source states, or state what it denies.
NEGATION_FLIPPED = [
    English(
        "Did Alibaba Cloud disclose which chips its large models use?",
        "Alibaba Cloud disclosed which chips its large models use.",
    ),
    English(
        "Which cloud platform performed well in training and running ChatGPT?",
        "Azure did not perform well in the training and running of ChatGPT.",
    ),
]
