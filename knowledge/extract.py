"""Turn an uploaded file into text, or refuse it with a message a person understands.

Accepted: plain text (.txt), Markdown (.md) and PDF (.pdf), recognised by the file name's
extension and, for PDF, by its first bytes; the browser's content type is not trusted. Text must be
UTF-8 (a UTF-8 or UTF-16 byte-order mark is honoured). A text file with NUL bytes is refused: it is
almost certainly binary. Text extracted from a PDF often carries NULs and other control characters
from its fonts' encodings, so there they are removed rather than refused.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from io import BytesIO
from pathlib import PurePath

from django.template.defaultfilters import filesizeformat

log = logging.getLogger(__name__)

MEDIA_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".pdf": "application/pdf",
}
# C0 controls but tab, newline, carriage return, form feed; DEL; C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


class UploadRejected(ValueError):
    """The file cannot be added; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Extracted:
    filename: str
    title: str
    media_type: str
    text: str


def clean_filename(name: str) -> str:
    """The last path component, without control characters, at most 255 characters."""
    base = PurePath(name.replace("\\", "/")).name
    base = _CONTROL.sub("", base).strip()
    return base[-255:] or "upload"


def clean_text(text: str) -> str:
    """Text safe for any database: no NULs or other control characters, no lone surrogates."""
    text = _CONTROL.sub(" ", text.replace("\x00", ""))
    text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate becomes "?"
    return unicodedata.normalize("NFC", text)


def check_upload(filename: str, size: int, max_bytes: int) -> tuple[str, str]:
    """The cleaned file name and media type, or ``UploadRejected`` for a file of the wrong kind,
    empty, or too large (callable before reading the file, when its size is known)."""
    name = clean_filename(filename)
    media_type = MEDIA_TYPES.get(PurePath(name).suffix.lower())
    if media_type is None:
        raise UploadRejected(
            f"“{name}” is not a file Chimera can read: add plain text (.txt), Markdown (.md) or PDF (.pdf)."
        )
    if size == 0:
        raise UploadRejected(f"“{name}” is empty.")
    if size > max_bytes:
        raise UploadRejected(
            f"“{name}” is {filesizeformat(size)}; the largest file you can add is {filesizeformat(max_bytes)}."
        )
    return name, media_type


def extract(filename: str, data: bytes, *, max_bytes: int, max_chars: int) -> Extracted:
    """The text of an uploaded file, or ``UploadRejected`` with the reason."""
    name, media_type = check_upload(filename, len(data), max_bytes)
    if media_type == "application/pdf":
        text = _pdf_text(name, data, max_chars)
    else:
        text = _decoded(name, data)
    text = text.strip()
    if not text:
        raise UploadRejected(f"“{name}” has no text in it.")
    if len(text) > max_chars:
        raise UploadRejected(
            f"“{name}” has {len(text):,} characters of text; the limit is {max_chars:,}. "
            "Split it into smaller files."
        )
    title = PurePath(name).stem.strip() or name
    return Extracted(filename=name, title=title[:200], media_type=media_type, text=text)


def _decoded(name: str, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UploadRejected(
            f"“{name}” is not UTF-8 text (the byte at position {exc.start:,} cannot be read). "
            "Save it as UTF-8 and add it again."
        ) from None
    if "\x00" in text:
        raise UploadRejected(f"“{name}” contains NUL bytes, so it looks like a binary file rather than text.")
    return clean_text(text)


def _pdf_text(name: str, data: bytes, max_chars: int) -> str:
    from pypdf import PdfReader

    if b"%PDF-" not in data[:1024]:
        raise UploadRejected(f"“{name}” is not a PDF file, whatever its name says.")
    try:
        reader = PdfReader(BytesIO(data))
        if reader.is_encrypted:
            raise UploadRejected(f"“{name}” is an encrypted PDF; add a copy without a password.")
        pages: list[str] = []
        total = 0
        for page in reader.pages:
            text = clean_text(page.extract_text() or "")
            pages.append(text)
            total += len(text)
            if total > max_chars:  # stop reading: a huge PDF is refused without reading every page
                raise UploadRejected(
                    f"“{name}” has more than {max_chars:,} characters of text. Split it into smaller files."
                )
    except UploadRejected:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on damaged or hostile files
        log.info("unreadable PDF upload %r: %s", name, type(exc).__name__)
        raise UploadRejected(f"“{name}” could not be read as a PDF (it may be damaged).") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise UploadRejected(
            f"“{name}” has no text that can be extracted (a scanned PDF holds only images of text)."
        )
    return text
