"""Decode an article's bytes: UTF-8 (with or without a BOM), UTF-16 with a BOM, and the legacy
Chinese encodings (GB18030, which covers GBK and GB2312, and Big5) told apart by
charset-normalizer. Only these candidates are tried, so a file in some other encoding is
refused with a reason instead of being read as plausible-looking nonsense."""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

from rag.readers.errors import Unreadable

# The legacy encodings a Chinese article may come in; charset-normalizer picks among them.
LEGACY = ("gb18030", "big5")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode(raw: bytes, forced: str | None = None) -> tuple[str, str]:
    """``(text, encoding)``; ``forced`` (RAG_CORPUS_ENCODING) skips detection. A UTF-8 BOM
    stays in the text, as it always has (offsets of existing articles do not move); the UTF-16
    and UTF-32 codecs drop theirs. Raises :class:`Unreadable` when no candidate decodes."""
    if forced:
        try:
            return raw.decode(forced), forced
        except UnicodeDecodeError as exc:
            raise Unreadable(
                f"not valid {forced} (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
            ) from None
    for bom, name in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode("utf-8" if name == "utf-8-sig" else name), name
            except UnicodeDecodeError as exc:
                raise Unreadable(f"starts with a {name} byte order mark but is not {name}") from (
                    exc
                )
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = f"byte 0x{raw[exc.start]:02x} at offset {exc.start}"
    best = from_bytes(raw, cp_isolation=list(LEGACY)).best()
    if best is None:
        raise Unreadable(f"not valid UTF-8 ({utf8_error}), GB18030 or Big5 text")
    return str(best), best.encoding
