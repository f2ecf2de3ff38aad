"""The ``rag`` command: index, search, ask, evaluate and serve."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from rag.errors import InvalidInputError, RagError, check_text
from rag.logs import configure_logging
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.answer import Answerer
    from rag.batch import BatchReport
    from rag.engine import Engine


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("corpus_dir", "index_dir", "embedder"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


def cmd_index(args: argparse.Namespace) -> int:
    from rag.embedding import load_embedder
    from rag.engine import index_config
    from rag.index import build_index

    settings = _settings(args)
    if args.verify:
        from rag.index import load_index

        # Hash every file whatever the stat cache says: bits that rot in place keep the stats.
        index = load_index(settings.index_dir, verify=True)
        print(f"index at {index.path} verified: {index.manifest.chunk_count} chunks, all files")
        return 0
    if args.add or args.remove:
        from rag.library import Library, read_uploads

        library = Library(settings.corpus_dir, settings.max_upload_bytes)
        for doc_id in args.remove or ():
            library.path_of(doc_id)  # every id checked before anything changes
        for added in library.add(read_uploads(args.add)) if args.add else ():
            print(f"{'replaced' if added.replaced else 'added'} {added.id}", file=sys.stderr)
        for doc_id in args.remove or ():
            library.delete(doc_id)
            print(f"removed {doc_id}", file=sys.stderr)
    if args.ray is not None:
        from rag.distributed.cluster import connected
        from rag.distributed.embedder import RayEmbedder

        with (
            connected(args.ray, args.ray_workers) as workers,
            RayEmbedder(settings.embedder, workers, device=settings.device) as embedder,
        ):
            manifest = build_index(
                index_config(settings),
                embedder,
                progress=_progress(args),
                embed_batch=embedder.call_batch,
            )
    else:
        manifest = build_index(
            index_config(settings),
            load_embedder(settings.embedder, settings.device),
            progress=_progress(args),
        )
    if args.json:
        print(manifest.model_dump_json(indent=2))
        return 0
    print(
        f"indexed {len(manifest.documents)} documents into {manifest.chunk_count} chunks "
        f"({manifest.embedded} embedded, {manifest.reused} reused) "
        f"in {manifest.build_seconds:.1f}s -> {settings.index_dir}"
    )
    for doc in manifest.documents:
        print(f"  {doc.id}: {doc.title} ({doc.date or 'no date'}, {doc.chunks} chunks)")
    for skipped in manifest.skipped:
        print(f"  skipped {skipped.path}: {skipped.reason}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from rag.engine import load_engine

    if bool(args.query) == bool(args.batch):
        raise InvalidInputError("give either a QUESTION or --batch FILE.jsonl")
    engine = load_engine(_settings(args), progress=_progress(args))
    if args.query:
        hits = engine.retriever.retrieve(args.query, args.k)
        if args.json:
            print(json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=2))
        else:
            for rank, hit in enumerate(hits, 1):
                print(f"[{rank}] {hit.score:.4f} {hit.doc} {hit.start}-{hit.end} {hit.title}")
                print("    " + hit.text.replace("\n", "\n    "))
        return 0
    from rag.batch import read_items

    items, errors = read_items(args.batch)
    for message in errors:
        print(message, file=sys.stderr)
    for item in items:
        hits = engine.retriever.retrieve(item.question, args.k)
        print(json.dumps({"id": item.id, "hits": [h.as_dict() for h in hits]}, ensure_ascii=False))
    return 1 if errors else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.engine import load_engine
    from rag.evaluation import evaluate_retrieval, read_questions

    engine = load_engine(_settings(args), progress=_progress(args))
    questions = read_questions(args.file, engine.index.documents)

    def search(question: str, k: int) -> list[tuple[str, int, int]]:
        return [(h.doc, h.start, h.end) for h in engine.retriever.retrieve(question, k)]

    report: dict[str, Any] = {"retrieval": evaluate_retrieval(questions, search, args.k)}
    if args.answers:
        from rag.answer import Answerer
        from rag.evaluation import evaluate_answers
        from rag.llm import chat_client

        answerer = Answerer(engine, chat_client(engine.settings))
        modes = args.mode or [answerer.default_mode]
        for mode in modes:
            table, records = evaluate_answers(
                questions, partial(answerer.answer, mode=mode), engine.index.documents
            )
            report[f"answers[{mode}]"] = table
            if args.details:
                report[f"details[{mode}]"] = records
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for name, table in report.items():
            if not name.startswith("details"):
                _print_table(name, table)
    return 0


def _answerer(args: argparse.Namespace) -> Answerer:
    from rag.answer import Answerer
    from rag.engine import load_engine
    from rag.llm import chat_client

    settings = _settings(args)
    return Answerer(load_engine(settings, progress=_progress(args)), chat_client(settings))


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.batch import read_items, run_batch

    if bool(args.question) == bool(args.batch):
        raise InvalidInputError("give either a QUESTION or --batch FILE.jsonl")
    if args.question:
        check_text(args.question)  # before the index loads: undecodable bytes in the shell
    if args.ray is not None:
        return _ask_on_ray(args)
    answerer = _answerer(args)
    mode = args.mode or answerer.default_mode
    if args.question:
        answer = answerer.answer(args.question, mode)
        if args.json:
            print(json.dumps(answer.as_dict(), ensure_ascii=False, indent=2))
            return 0
        print(answer.answer)
        for c in answer.citations:
            print(f"  [{c.id}] {c.title} ({c.doc} {c.start}-{c.end}): {c.quote}")
        extra = [f"mode={answer.mode}"]
        if answer.route_reason:
            extra.append(f"route: {answer.route_reason}")
        if answer.fallback_reason:
            extra.append(f"fallback: {answer.fallback_reason}")
        print("  (" + "; ".join(extra) + ")")
        return 0
    items, errors = read_items(args.batch)
    for message in errors:
        print(message, file=sys.stderr)
    report = run_batch(
        items, lambda q: answerer.answer(q, mode), args.out, progress=_progress(args)
    )
    return _batch_summary(errors, report)


def _ask_on_ray(args: argparse.Namespace) -> int:
    """``rag ask --batch --ray``: the same input, output and summary, answered on a cluster."""
    from rag.batch import read_items
    from rag.distributed.batch import run_batch_on_ray
    from rag.distributed.cluster import connected

    if not args.batch:
        raise InvalidInputError("--ray answers a --batch FILE.jsonl")
    items, errors = read_items(args.batch)
    for message in errors:
        print(message, file=sys.stderr)
    with connected(args.ray, args.ray_workers) as workers:
        report = run_batch_on_ray(
            items, _settings(args), args.mode, args.out, workers=workers, progress=_progress(args)
        )
    return _batch_summary(errors, report)


def _batch_summary(errors: list[str], report: BatchReport) -> int:
    """Failed items and the counts on stderr; non-zero when any line or item failed."""
    for message in report.errors:
        print(message, file=sys.stderr)
    print(
        f"answered {report.answered}, already done {report.skipped}, "
        f"bad lines {len(errors)}, failed {len(report.errors)}",
        file=sys.stderr,
    )
    return 1 if errors or report.errors else 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    # Workers are separate processes that read settings from the environment.
    for name in ("corpus_dir", "index_dir", "embedder"):
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"RAG_{name.upper()}"] = str(value)
    settings = _settings(args)
    # Load (or build, with progress in this terminal) the index before the server starts, so
    # a first start says what it is doing. One worker serves this very engine; several are
    # separate processes that each load their own.
    engine = _load_engine(settings, _progress(args))
    serving = f"serving {len(engine.index.documents)} articles ({len(engine.index.chunks)} chunks)"
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        # JSON for over-long URLs and headers slower than RAG_READ_TIMEOUT (rag.api.protocol).
        "http": "rag.api.protocol:HttpProtocol",
        "timeout_keep_alive": 5,
    }
    if args.workers > 1:
        del engine  # this process only supervises the workers
        _say(f"{serving} at {_url(args.host, args.port)} with {args.workers} workers")
        uvicorn.run(APP, factory=True, workers=args.workers, **options)
        return 0

    class AnnouncingServer(uvicorn.Server):
        """Says where it listens once it really does, after the app loaded the index."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                port = self.config.port  # or the one the system chose for port 0
                for server in self.servers:
                    port = next((s.getsockname()[1] for s in server.sockets), port)
                _say(f"{serving} at {_url(self.config.host, port)} (Ctrl+C stops)")

    from rag.api.app import create_app

    server = AnnouncingServer(uvicorn.Config(create_app(settings, engine=engine), **options))
    server.run()
    if not server.started:
        raise RagError(f"the server did not start on {_url(args.host, args.port)} (see above)")
    return 0


APP = "rag.api.app:app_from_env"


def _load_engine(settings: Settings, progress: bool) -> Engine:
    """The engine ``serve`` serves, saying so when the index has to be built first."""
    from rag.engine import load_engine

    def announce(reason: str) -> None:
        _say(f"building the index of {settings.corpus_dir} in {settings.index_dir} ({reason})")

    return load_engine(settings, progress=progress, announce=announce)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _say(message: str) -> None:
    """A status line for the person at the terminal, whatever the log level."""
    print(f"rag: {message}", file=sys.stderr, flush=True)


# Column headings for the answer metrics, short enough to keep a table within a terminal.
_HEADINGS = {
    "accuracy": "acc",
    "sentence_accuracy": "sent_acc",
    "short_em": "short_em",
    "short_f1": "short_f1",
    "short_coverage": "short_cov",
    "answer_f1": "answer_f1",
    "abstention": "abstain",
    "false_abstention": "false_abst",
    "citation_validity": "cite_ok",
    "seconds": "sec",
    "n_answered": "answered",
    "n_related": "related",
    "n_none": "none",
}


def _print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    """One line per question type; ``n_*`` columns are counts, the others means."""
    found = {m for r in rows.values() for m in r if m != "n"}
    order = [m for m in _HEADINGS if m in found]
    metrics = order + sorted(found - set(order))
    heads = [_HEADINGS.get(m, m) for m in metrics]
    widths = [max(7, len(h) + 2) for h in heads]
    print(f"{title}:")
    header = "".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True))
    print(f"  {'type':<14}{'n':>4}{header}")
    for name, row in rows.items():
        cells = ""
        for m, w in zip(metrics, widths, strict=True):
            if m not in row:
                cells += f"{'-':>{w}}"
            elif m.startswith("n_"):
                cells += f"{int(row[m]):>{w}}"
            else:
                cells += f"{row[m]:>{w}.3f}"
        print(f"  {name:<14}{int(row['n']):>4}{cells}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Cited answers from your Chinese news articles: index, search, ask, "
        "evaluate and serve.",
    )
    parser.add_argument("--log-level", default=None, help="override RAG_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--corpus", dest="corpus_dir", type=Path, help="folder of .txt/.md articles")
        p.add_argument("--index-dir", dest="index_dir", type=Path, help="where the index lives")
        p.add_argument("--embedder", help="'e5' or 'st:<model name or path>'")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    def ray_options(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument(
            "--ray",
            nargs="?",
            const="local",
            metavar="ADDRESS",
            help=f"{what} on a Ray cluster: 'auto', 'ray://head:10001', or none for a local one",
        )
        p.add_argument("--ray-workers", type=int, help="Ray workers (default: cluster CPUs)")

    p = sub.add_parser("index", help="build or update the index")
    common(p)
    p.add_argument(
        "--add", nargs="+", type=Path, metavar="FILE", help="copy articles into the corpus first"
    )
    p.add_argument(
        "--remove", nargs="+", metavar="ID", help="delete articles (ids as listed) first"
    )
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument(
        "--verify", action="store_true", help="hash and check every index file; build nothing"
    )
    ray_options(p, "embed")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="retrieve passages for a question")
    common(p)
    p.add_argument("query", nargs="?", help="the question")
    p.add_argument("--batch", type=Path, help="JSONL file of {id, question} lines")
    p.add_argument("-k", type=int, default=5, help="passages per question")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("eval", help="retrieval (and answer) metrics on a JSONL question set")
    common(p)
    p.add_argument("file", type=Path, help="questions with evidence, like shared/eval/dev.jsonl")
    p.add_argument("-k", type=int, default=5, help="passages retrieved per question")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("--answers", action="store_true", help="also score answers")
    p.add_argument(
        "--mode",
        action="append",
        choices=["auto", "extractive", "llm"],
        help="answer mode to score (repeatable; default: the service default)",
    )
    p.add_argument("--details", action="store_true", help="with --json: per-question records")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("ask", help="answer a question with citations")
    common(p)
    p.add_argument("question", nargs="?", help="the question")
    p.add_argument("--batch", type=Path, help="JSONL file of {id, question} lines")
    p.add_argument("--out", type=Path, help="with --batch: append answers here (resumable)")
    p.add_argument("--mode", choices=["auto", "extractive", "llm"], help="answer mode")
    p.add_argument("--json", action="store_true", help="print the answer object as JSON")
    ray_options(p, "answer --batch")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("serve", help="serve the HTTP API and web page")
    common(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings_level = Settings().log_level if args.log_level is None else args.log_level
        configure_logging(settings_level, Settings().log_json)
        return int(args.func(args))
    except RagError as exc:
        print(f"rag: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rag eval ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ValidationError as exc:  # RAG_* settings or options that fail validation
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        print(f"rag: error: invalid configuration: {problems}", file=sys.stderr)
        return 2
