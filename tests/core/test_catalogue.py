"""The Chinese catalogue is complete: every message the code and the templates mark for translation (extracted as
`make translations-update` extracts them, through babel.cfg) has a non-empty, non-fuzzy zh translation whose
placeholders are the msgid's own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "metropoints" / "translations" / "zh" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]|(?<!{){(\w+)}(?!})")


def extracted(tmp_path: Path):
    """The messages the sources use, by the Makefile's own extraction command, into a temporary template."""
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
                    "-k", "_l", "-k", "lazy_gettext", "-k", "N_", "-o", str(pot), "."],
                   cwd=ROOT, check=True, capture_output=True)
    with pot.open("rb") as handle:
        return read_po(handle)


def placeholders(text: str) -> list[str]:
    """The named placeholders of a message, sorted (%(name)s and {name} alike)."""
    return sorted(a or b for a, b in PLACEHOLDER.findall(text))


def forms(value) -> list[str]:
    """A message's singular and plural forms (a plain msgid or msgstr is one form)."""
    return [value] if isinstance(value, str) else list(value)


def test_every_used_message_has_a_chinese_translation(tmp_path):
    """Each msgid in the code and templates has a zh msgstr: present, not empty, not fuzzy."""
    with CATALOGUE.open("rb") as handle:
        zh = read_po(handle)
    problems = []
    for message in extracted(tmp_path):
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        translated = zh.get(key)
        if translated is None:
            problems.append(f"missing: {key!r} ({', '.join(f'{f}:{n}' for f, n in message.locations[:2])})")
        elif translated.fuzzy:
            problems.append(f"fuzzy: {key!r}")
        elif not all(s.strip() for s in forms(translated.string)):
            problems.append(f"empty: {key!r}")
    assert not problems, "run `make translations-update` and translate:\n" + "\n".join(problems)


def test_placeholders_match_between_msgid_and_msgstr():
    """A translation names the same placeholders as its msgid (%(name)s, {name}): none lost, none invented."""
    with CATALOGUE.open("rb") as handle:
        zh = read_po(handle)
    wrong = []
    for message in zh:
        if not message.id or not message.string:
            continue
        wanted = placeholders(forms(message.id)[-1])
        for string in forms(message.string):
            if string and placeholders(string) != wanted:
                wrong.append(f"{forms(message.id)[0]!r}: {placeholders(string)} != {wanted}")
    assert not wrong, "\n".join(wrong)
