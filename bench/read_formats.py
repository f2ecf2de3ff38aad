"""How long each reader takes to turn a file into article text, side by side in one run.

Usage: python bench/read_formats.py [--rounds 5] [--size 200]

The same Chinese article (the bundled 2023 one's body, repeated to about ``--size`` kB of text)
is written in every format with the library made for it (UTF-8 and GBK text, Markdown, HTML,
PDF by PyMuPDF, Word by python-docx), then ``rag.readers.extract`` reads each file, formats
interleaved round by round so a swing in machine load hits all alike. Reports the median
seconds per file, the MB of text per second, and the ratio to reading the UTF-8 text file, to
bench/results/read_formats.json. Needs the dev extra (PyMuPDF).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag.corpus import load_document  # noqa: E402
from rag.readers import extract  # noqa: E402
from rag.settings import BUNDLED_CORPUS  # noqa: E402

OUT = REPO / "bench" / "results" / "read_formats.json"
ARTICLE = "000_64977604fa216111.txt"


def paragraphs(size_kb: int) -> list[str]:
    doc = load_document(BUNDLED_CORPUS / ARTICLE)
    body = [doc.text[s:e] for s, e in doc.body]
    out: list[str] = []
    while sum(len(p.encode()) for p in out) < size_kb * 1024:
        out += [p for piece in body for p in piece.split("\n") if p.strip()]
    return out


def files(paras: list[str]) -> dict[str, tuple[str, bytes]]:
    import docx
    import pymupdf

    text = "测试文章\n\n" + "\n\n".join(paras) + "\n"
    markdown = "---\ntitle: 测试文章\n---\n\n# 测试文章\n\n" + "\n\n".join(
        f"- {p}" if i % 3 == 0 else f"**{p[:4]}**{p[4:]}" for i, p in enumerate(paras)
    )
    page = "".join(f"<p>{p}</p>" for p in paras)
    html = (
        "<html><head><title>测试文章</title></head><body><nav><a href='/'>首页</a></nav>"
        f"<article><h1>测试文章</h1>{page}</article><footer>版权所有</footer></body></html>"
    )
    pdf = pymupdf.open()
    rect = pymupdf.Rect(50, 50, 545, 792)
    for start in range(0, len(paras), 6):
        pdf.new_page().insert_textbox(
            rect, "\n".join(paras[start : start + 6]), fontname="china-s", fontsize=9
        )
    word = docx.Document()
    word.add_paragraph("测试文章", style="Title")
    for p in paras:
        word.add_paragraph(p)
    buffer = io.BytesIO()
    word.save(buffer)
    return {
        "txt (UTF-8)": ("a.txt", text.encode()),
        "txt (GBK)": ("a.txt", text.encode("gb18030")),
        "md": ("a.md", markdown.encode()),
        "html": ("a.html", html.encode()),
        "pdf": ("a.pdf", pdf.tobytes()),
        "docx": ("a.docx", buffer.getvalue()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=200, help="kB of UTF-8 text per file")
    args = parser.parse_args()
    made = files(paragraphs(args.size))
    times: dict[str, list[float]] = {name: [] for name in made}
    chars: dict[str, int] = {}
    load = os.getloadavg()
    for name, (file_name, raw) in made.items():  # warm-up: imports and caches
        chars[name] = len(extract(file_name, raw).text)
    for round_ in range(args.rounds):
        order = list(made) if round_ % 2 == 0 else list(reversed(made))
        for name in order:
            file_name, raw = made[name]
            start = time.perf_counter()
            extract(file_name, raw)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["txt (UTF-8)"])
    rows = {}
    for name, (_, raw) in made.items():
        median = statistics.median(times[name])
        rows[name] = {
            "file_bytes": len(raw),
            "text_chars": chars[name],
            "median_s": round(median, 5),
            "text_mb_per_s": round(chars[name] * 3 / 1e6 / median, 2),
            "ratio_to_utf8_txt": round(median / base, 1),
        }
        print(
            f"{name:12s} {len(raw) / 1024:8.0f} kB  median {median * 1000:8.1f} ms  "
            f"x{median / base:8.1f} of UTF-8 text"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "rounds": args.rounds,
                "size_kb": args.size,
                "cores": os.cpu_count(),
                "load_before": load,
                "load_after": os.getloadavg(),
                "python": platform.python_version(),
                "formats": rows,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
