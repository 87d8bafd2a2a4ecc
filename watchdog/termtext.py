"""Text from outside (silence comments, authors, matchers, rule names, reasons) made
safe to print on a terminal, and cut to a byte limit without splitting a character.

A silence comment is written by whoever reaches the API; printed raw, an ESC sequence
can recolour or rewrite the operator's screen, OSC 52 can write their clipboard, and a
NUL or a carriage return can hide the rest of a line. Every place that prints such text
to a terminal goes through ``printable``: control and invisible format characters
(bidi overrides included) are shown as Python-style escapes, everything else as is.
"""

from __future__ import annotations

import unicodedata

# Cc: C0/C1 controls, DEL; Cf: format (bidi overrides, zero-width); Zl/Zp: line and
# paragraph separators; Cs: lone surrogates.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def printable(text: str) -> str:
    """``text`` with every unsafe character written as ``\\x1b`` / ``\\u202e``."""
    if text.isascii() and text.isprintable():
        return text  # the common case, no per-character work
    out = []
    for char in text:
        if unicodedata.category(char) in _UNSAFE:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def truncate_utf8(text: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, never cutting a character in half (an API that
    counts bytes, like Cloudflare's 100-byte deployment message)."""
    return text.encode()[:limit].decode("utf-8", errors="ignore")
