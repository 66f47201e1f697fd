"""Readers' text, made comparable: the one form every report rule is matched against.

What readers write is the most hostile input the bot reads, and it is never passed
on: only the labels of the rules it matched leave the classifier. So this form only
has to be good for matching, and cheap whatever comes in:

- at most ``limit`` characters are read (a 40 KB comment costs what 4 KB cost);
- Reddit's entity escapes (``&amp;`` ``&gt;``) and markdown backslash escapes
  (``overloaded\\_error``, as the rich-text editor writes it) are undone;
- Unicode NFKC (fullwidth and mathematical letters, ligatures), then Cyrillic and
  Greek lookalike letters to Latin ones (before casefolding, where the Greek capital
  eta still looks like ``H``, not like the small eta it folds to), casefold, accents
  dropped;
- invisible characters (zero-width, joiners, bidi controls, tags, filler letters) are
  dropped, so ``do\\u200bwn`` is ``down``;
- links and ``u/`` ``r/`` mentions are dropped (a URL with "down" in it reports
  nothing); apostrophes are dropped (``can't`` is ``cant``);
- what remains is words of letters, digits and inner underscores (``overloaded_error``
  stays one word), separated by single spaces.

Pure: no I/O.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

LIMIT = 4096  # characters read from one text

# Letters that look like Latin ones, by case: a brigade or a spammer writing "Claude
# is down" with Cyrillic a, e and o must read the same as the Latin text. Capitals are
# mapped before casefolding, where their look is still known. Named, not pasted: the
# lookalikes are exactly what a reader of this file could not tell apart.
_LOOKALIKE_NAMES = {
    # Cyrillic
    "CYRILLIC CAPITAL LETTER A": "A",
    "CYRILLIC CAPITAL LETTER VE": "B",
    "CYRILLIC CAPITAL LETTER IE": "E",
    "CYRILLIC CAPITAL LETTER IO": "E",
    "CYRILLIC CAPITAL LETTER KA": "K",
    "CYRILLIC CAPITAL LETTER EM": "M",
    "CYRILLIC CAPITAL LETTER EN": "H",
    "CYRILLIC CAPITAL LETTER O": "O",
    "CYRILLIC CAPITAL LETTER ER": "P",
    "CYRILLIC CAPITAL LETTER ES": "C",
    "CYRILLIC CAPITAL LETTER TE": "T",
    "CYRILLIC CAPITAL LETTER U": "Y",
    "CYRILLIC CAPITAL LETTER HA": "X",
    "CYRILLIC CAPITAL LETTER DZE": "S",
    "CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I": "I",
    "CYRILLIC CAPITAL LETTER YI": "I",
    "CYRILLIC CAPITAL LETTER JE": "J",
    "CYRILLIC CAPITAL LETTER KOMI DE": "D",
    "CYRILLIC CAPITAL LETTER QA": "Q",
    "CYRILLIC CAPITAL LETTER WE": "W",
    "CYRILLIC CAPITAL LETTER SHHA": "H",
    "CYRILLIC LETTER PALOCHKA": "I",
    "CYRILLIC SMALL LETTER A": "a",
    "CYRILLIC SMALL LETTER VE": "b",
    "CYRILLIC SMALL LETTER IE": "e",
    "CYRILLIC SMALL LETTER IO": "e",
    "CYRILLIC SMALL LETTER KA": "k",
    "CYRILLIC SMALL LETTER EM": "m",
    "CYRILLIC SMALL LETTER EN": "h",
    "CYRILLIC SMALL LETTER O": "o",
    "CYRILLIC SMALL LETTER PE": "n",
    "CYRILLIC SMALL LETTER ER": "p",
    "CYRILLIC SMALL LETTER ES": "c",
    "CYRILLIC SMALL LETTER TE": "t",
    "CYRILLIC SMALL LETTER U": "y",
    "CYRILLIC SMALL LETTER HA": "x",
    "CYRILLIC SMALL LETTER DZE": "s",
    "CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I": "i",
    "CYRILLIC SMALL LETTER YI": "i",
    "CYRILLIC SMALL LETTER JE": "j",
    "CYRILLIC SMALL LETTER KOMI DE": "d",
    "CYRILLIC SMALL LETTER QA": "q",
    "CYRILLIC SMALL LETTER WE": "w",
    "CYRILLIC SMALL LETTER SHHA": "h",
    "CYRILLIC SMALL LETTER PALOCHKA": "l",
    "CYRILLIC SMALL LETTER SOFT SIGN": "b",
    # Greek
    "GREEK CAPITAL LETTER ALPHA": "A",
    "GREEK CAPITAL LETTER BETA": "B",
    "GREEK CAPITAL LETTER EPSILON": "E",
    "GREEK CAPITAL LETTER ZETA": "Z",
    "GREEK CAPITAL LETTER ETA": "H",
    "GREEK CAPITAL LETTER IOTA": "I",
    "GREEK CAPITAL LETTER KAPPA": "K",
    "GREEK CAPITAL LETTER MU": "M",
    "GREEK CAPITAL LETTER NU": "N",
    "GREEK CAPITAL LETTER OMICRON": "O",
    "GREEK CAPITAL LETTER RHO": "P",
    "GREEK CAPITAL LETTER TAU": "T",
    "GREEK CAPITAL LETTER UPSILON": "Y",
    "GREEK CAPITAL LETTER CHI": "X",
    "GREEK CAPITAL LUNATE SIGMA SYMBOL": "C",
    "GREEK SMALL LETTER ALPHA": "a",
    "GREEK SMALL LETTER BETA": "b",
    "GREEK SMALL LETTER GAMMA": "y",
    "GREEK SMALL LETTER EPSILON": "e",
    "GREEK SMALL LETTER ETA": "n",
    "GREEK SMALL LETTER IOTA": "i",
    "GREEK SMALL LETTER KAPPA": "k",
    "GREEK SMALL LETTER MU": "u",
    "GREEK SMALL LETTER NU": "v",
    "GREEK SMALL LETTER OMICRON": "o",
    "GREEK SMALL LETTER RHO": "p",
    "GREEK SMALL LETTER TAU": "t",
    "GREEK SMALL LETTER UPSILON": "u",
    "GREEK SMALL LETTER CHI": "x",
    "GREEK SMALL LETTER OMEGA": "w",
    "GREEK LUNATE SIGMA SYMBOL": "c",
    "GREEK LETTER YOT": "j",
    # Latin letters that pass for others
    "LATIN SMALL LETTER DOTLESS I": "i",
    "LATIN SMALL LETTER DOTLESS J": "j",
    "LATIN SMALL LETTER SCRIPT G": "g",
    "LATIN SMALL LETTER ALPHA": "a",
    "LATIN LETTER SMALL CAPITAL L": "l",
    "LATIN LETTER SMALL CAPITAL N": "n",
    "LATIN LETTER SMALL CAPITAL D": "d",
    "LATIN LETTER SMALL CAPITAL O": "o",
    "LATIN LETTER SMALL CAPITAL W": "w",
}
_LOOKALIKES = str.maketrans(
    {unicodedata.lookup(name): latin for name, latin in _LOOKALIKE_NAMES.items()}
)
# Characters that print as nothing but are letters or symbols, not format characters.
_FILLERS = str.maketrans(dict.fromkeys("\u115f\u1160\u3164\uffa0\u2800\u180e", ""))
_APOSTROPHES = str.maketrans(dict.fromkeys("'\u2019\u2018\u02bc\u2032\u00b4", ""))
_ESCAPE = re.compile(r"\\(?=[^\s])")
_LINK = re.compile(r"(?:https?://|www\.)\S*")
_MENTION = re.compile(r"(?<![^\W_])/?[ur]/[\w-]+")
_NOT_WORD = re.compile(r"[\W]+")
_EDGE_UNDERSCORES = re.compile(r"(?<![^\W_])_+|_+(?![^\W_])")


@dataclass(frozen=True)
class Normalised:
    """A text in matching form, and how much of it was read."""

    words: str  # words separated by single spaces, no leading or trailing space
    read: int  # characters of the original that were read
    length: int  # characters of the original


def normalise(text: str, limit: int = LIMIT) -> Normalised:
    """``text`` in the form rules are matched against (see the module's docstring)."""
    head = text[:limit]
    head = html.unescape(head) if "&" in head else head
    # Apostrophes go before NFKC (which turns an acute accent into a space and a mark)
    # and after it (which turns a fullwidth apostrophe into a plain one).
    head = head.translate(_APOSTROPHES)
    head = unicodedata.normalize("NFKC", head)[:limit]  # NFKC may lengthen ("ﷺ")
    head = head.translate(_LOOKALIKES).casefold()
    head = "".join(
        c for c in unicodedata.normalize("NFD", head) if unicodedata.category(c) not in _DROPPED
    )
    head = head.translate(_FILLERS).translate(_APOSTROPHES)
    head = _ESCAPE.sub("", head)
    head = _LINK.sub(" ", head)
    head = _MENTION.sub(" ", head)
    head = _NOT_WORD.sub(" ", head)
    head = _EDGE_UNDERSCORES.sub(" ", head)
    return Normalised(" ".join(head.split()), min(len(text), limit), len(text))


# Accents and other marks (so "dôwn" is "down"), and format characters: zero-width
# spaces and joiners, soft hyphens, bidi controls, tag characters.
_DROPPED = frozenset({"Mn", "Me", "Cf"})
