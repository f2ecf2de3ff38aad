"""Real article files of every supported format, written by the libraries made for them.

Each holds a short Chinese news story with a fact only it states, so a test can ask about that
fact and know which file must answer.
"""

from __future__ import annotations

import io

PANDA_HTML = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>大熊猫双胞胎首次亮相 - 成都晚报</title>
<meta name="author" content="李四">
<meta property="og:site_name" content="成都晚报">
<meta property="og:title" content="大熊猫双胞胎首次亮相">
<meta property="article:published_time" content="2025-08-15T08:00:00+08:00">
</head><body>
<nav><ul><li><a href="/">首页</a></li><li><a href="/news">新闻</a></li>
<li><a href="/sports">体育</a></li><li><a href="/about">关于我们</a></li></ul></nav>
<div class="ad banner">广告：买房就找某某地产，咨询电话一二三四五六。</div>
<article>
<h1>大熊猫双胞胎首次亮相</h1>
<p>成都大熊猫繁育研究基地的双胞胎幼崽今天首次与游客见面，现场吸引了上千名游客。</p>
<p>幼崽目前住在月亮产房，由两名饲养员轮流照看，每天称重三次。</p>
<h2>体重增长</h2>
<ul><li>姐姐的体重已经达到五点二公斤。</li><li>弟弟的体重为四点八公斤。</li></ul>
<p>基地表示，游客可以在上午九点到十一点之间参观幼崽。</p>
</article>
<aside class="related"><h3>相关阅读</h3><ul><li><a href="/a">熊猫基地门票涨价</a></li></ul></aside>
<footer><p>Copyright © 2025 成都晚报 版权所有</p><p>蜀ICP备12345678号</p></footer>
</body></html>
"""

TEA_MARKDOWN = """---
title: 蒙顶山春茶开采
author: [王五]
date: 2025-03-20
source: 雅安日报
---

# 蒙顶山春茶开采

*2025-03-20 · 雅安日报*

雅安市名山区的蒙顶山**春茶**今天正式开采，首批茶青收购价为每斤八百元。

## 产量预计

- 今年的春茶产量预计比去年增加一成。
- 茶农们凌晨五点就上山采摘。

> 当地茶叶协会表示，气温回升让新芽提前了一周。
"""

GBK_TEXT = (
    "熊猫邮局推出新明信片\n"
    "2025-06-01\n\n"
    "位于宽窄巷子的熊猫邮局推出了一套十二张的新明信片，售价为六十元。\n"
    "游客可以在邮局现场加盖熊猫邮戳。\n"
)

UTF8_TEXT = (
    "天府绿道新增骑行路线\n"
    "2025-05-10\n\n"
    "成都天府绿道新增一条长度为四十二公里的环湖骑行路线。\n"
    "沿途设有六个驿站，提供饮水和自行车维修服务。\n"
)

PDF_TITLE = "川剧变脸进校园"
PDF_PAGES = [
    [PDF_TITLE, "四川省川剧院的演员走进成都市的二十所中学，为学生表演变脸绝技。"],
    ["第二页的内容：今年的巡演共安排了四十场，观众超过一万人。"],
]

DOCX_TITLE = "火锅博物馆开馆"
DOCX_PARAGRAPHS = [
    "郫都区的川菜博物馆新建了火锅展厅，展出了三百件老火锅器具。",
    "展厅每周一闭馆，其余时间免费开放。",
]


def pdf_bytes(pages: list[list[str]] = PDF_PAGES, *, title: str = "", author: str = "") -> bytes:
    """A PDF written by PyMuPDF with its built-in Simplified Chinese font, one line each."""
    import pymupdf

    document = pymupdf.open()
    for lines in pages:
        page = document.new_page()
        for row, line in enumerate(lines):
            page.insert_text((56, 72 + 24 * row), line, fontname="china-s", fontsize=11)
    document.set_metadata({"title": title, "author": author})
    return document.tobytes()


def docx_bytes(
    title: str = DOCX_TITLE, paragraphs: list[str] = DOCX_PARAGRAPHS, *, author: str = "赵六"
) -> bytes:
    """A Word file written by python-docx: a Title paragraph, body paragraphs, a table."""
    import docx

    document = docx.Document()
    document.core_properties.author = author
    document.add_paragraph(title, style="Title")
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("展品", "数量"), ("铜火锅", "一百二十件")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
