"""Person-name normalisation for matching: titles, suffixes, name order and nicknames.

Title and suffix words come from nameparser's constants, nicknames from the ``nicknames``
package (a curated name -> nickname list). Only the choice of one canonical name per
nickname is ours: see :func:`canonical_given_name`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from nameparser.config import CONSTANTS
from nicknames import NickNamer
from unidecode import unidecode

__all__ = ["PREFERRED_FORMAL", "STANDALONE_NAMES", "canonical_given_name"]
__all__ += ["normalize_first_name", "normalize_name", "same_given_name", "given_name_pairs"]

# Well-known nicknames, most of them listed under several formal names in the data
# (Bob: Robert, Bert, Bobby) or not spelled like their formal name (Bill, Peggy, Dick).
# Each maps to its most common formal name, so "Bob Smith" matches "Robert Smith".
# Every value is a formal name (it maps to itself).
PREFERRED_FORMAL: dict[str, str] = {
    "bob": "robert", "bobby": "robert", "rob": "robert", "robbie": "robert",
    "robby": "robert", "bill": "william", "billy": "william", "will": "william",
    "willie": "william", "willy": "william", "liz": "elizabeth", "lizzie": "elizabeth",
    "lizzy": "elizabeth", "beth": "elizabeth", "betty": "elizabeth", "betsy": "elizabeth",
    "eliza": "elizabeth", "kate": "katherine", "katie": "katherine", "kathy": "katherine",
    "cathy": "catherine", "mike": "michael", "mikey": "michael", "mick": "michael",
    "jim": "james", "jimmy": "james", "tom": "thomas", "tommy": "thomas",
    "dick": "richard", "rick": "richard", "ricky": "richard", "rich": "richard",
    "richie": "richard", "peggy": "margaret", "maggie": "margaret", "meg": "margaret",
    "sue": "susan", "susie": "susan", "suzy": "susan", "johnny": "john", "joe": "joseph",
    "joey": "joseph", "dan": "daniel", "danny": "daniel", "dave": "david", "davey": "david",
    "steve": "steven", "stevie": "steven", "tony": "anthony", "andy": "andrew",
    "nick": "nicholas", "nicky": "nicholas", "matt": "matthew", "ed": "edward",
    "eddie": "edward", "ted": "edward", "teddy": "edward", "ned": "edward",
    "fred": "frederick", "freddy": "frederick", "jen": "jennifer", "jenny": "jennifer",
    "becky": "rebecca", "becca": "rebecca", "abby": "abigail", "abe": "abraham",
    "greg": "gregory", "larry": "lawrence", "jerry": "gerald", "ben": "benjamin",
    "benny": "benjamin", "tim": "timothy", "timmy": "timothy", "ken": "kenneth",
    "kenny": "kenneth", "ron": "ronald", "ronnie": "ronald", "don": "donald",
    "donnie": "donald", "charlie": "charles", "chuck": "charles", "hank": "henry",
    "jeff": "jeffrey", "josh": "joshua", "pam": "pamela", "deb": "deborah",
    "debbie": "deborah", "vicky": "victoria", "cindy": "cynthia", "sandy": "sandra",
    "patty": "patricia", "trish": "patricia", "sally": "sarah", "gabe": "gabriel",
    "dot": "dorothy", "dottie": "dorothy", "wally": "walter", "ray": "raymond",
    "zach": "zachary", "zack": "zachary", "vince": "vincent", "len": "leonard",
    "lenny": "leonard", "stan": "stanley", "phil": "philip", "kim": "kimberly",
    "ginny": "virginia", "manny": "manuel",
}  # fmt: skip

# Nicknames of a man's and a woman's name alike (Sam: Samuel or Samantha, Chris: Christopher
# or Christina, Alex: Alexander or Alexandra) keep their own form: no single formal name is
# right, and the "name" comparison (:func:`same_given_name`) links them to each.

# Names the data lists as nicknames (Jack of Jackson, Evan of Evangeline) that are given
# names in their own right: they always map to themselves.
STANDALONE_NAMES = frozenset(
    {"jack", "evan", "carl", "joy", "jay", "kay", "eve", "maria", "ali", "ana", "sal"}
)


@cache
def _nicknamer() -> NickNamer:
    return NickNamer()  # parses the package's CSV: once per process


@cache
def _nickname_map() -> dict[str, str]:
    """name -> canonical given name, for every name that does not map to itself."""
    nicknamer = _nicknamer()
    formals_of = nicknamer.canonical_lookup  # nickname -> names it is a nickname of
    has_nicknames = nicknamer.nickname_lookup.keys()
    names = set(has_nicknames) | set(formals_of)
    formal = {n for n in names if n in has_nicknames or n not in formals_of}
    formal |= set(PREFERRED_FORMAL.values()) | STANDALONE_NAMES
    mapping: dict[str, str] = {}
    for name in names - formal:
        # Only a plain shortening ("jen" of "jennifer") is trusted from the data: other
        # links there join distinct names (Micah -> Michael, Felix -> Felicia).
        candidates = [f for f in formals_of[name] & formal if f.startswith(name)]
        if len(name) >= 3 and len(candidates) == 1:
            mapping[name] = candidates[0]
    mapping.update(PREFERRED_FORMAL)
    return mapping


def canonical_given_name(token: str) -> str:
    """The canonical form of one lower-case given-name token.

    Deterministic rule, in order:

    1. a nickname in :data:`PREFERRED_FORMAL` maps to its listed formal name
       ("bob" -> "robert", "bill" -> "william", "liz" -> "elizabeth");
    2. a formal name maps to itself: a name of :data:`STANDALONE_NAMES` or a value of
       :data:`PREFERRED_FORMAL`, or a name that has nicknames of its own or is nobody's
       nickname in the ``nicknames`` data ("robert", "katherine");
    3. another nickname of three or more letters maps to a formal name when exactly one
       of the formal names the data lists it under starts with it ("pete" -> "peter",
       "geoff" -> "geoffrey");
    4. anything else (ambiguous nicknames such as "al", names not in the data, initials)
       is returned unchanged.
    """
    return _nickname_map().get(token, token)


# --- nameparser word sets --------------------------------------------------------------


def _key(word: str) -> str:
    # Words are compared without punctuation: "Ph.D." == "phd", "co-founder" == "cofounder".
    return "".join(ch for ch in word.lower() if ch.isalnum())


def _ascii_keys(words: Iterable[str]) -> frozenset[str]:
    return frozenset(k for w in words if w.isascii() and (k := _key(w)))


@cache
def _word_sets() -> tuple[frozenset[str], ...]:
    nicknamer = _nicknamer()
    known_names = frozenset(nicknamer.nickname_lookup) | frozenset(nicknamer.canonical_lookup)
    titles = _ascii_keys(CONSTANTS.titles) | _ascii_keys(CONSTANTS.first_name_titles)
    # Titles that are also given names ("King", "Ab") are titles only when written "King.".
    name_titles = titles & known_names
    generational = {"jr", "jnr", "junior", "sr", "snr", "senior"}
    not_acronyms = _ascii_keys(CONSTANTS.suffix_not_acronyms)
    # Strong suffixes (Jr, III, Esq) are dropped after one word; weak ones (degrees such as
    # MA or DO, single letters, given names) only after two words, so "Jack Ma" keeps Ma.
    strong = frozenset(
        s for s in not_acronyms if len(s) > 1 and s.isalpha() and s not in known_names
    ) | frozenset(generational)
    weak = (_ascii_keys(CONSTANTS.suffix_acronyms) | not_acronyms) - strong
    prefixes = _ascii_keys(CONSTANTS.prefixes)
    return titles, name_titles, strong, weak, prefixes, known_names


# Titles dropped whenever another word follows, even without a period ("Dr Smith").
_COMMON_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "sir", "dame"})

# --- tokenising ------------------------------------------------------------------------

_APOSTROPHES_RE = re.compile(r"['`]")
_SPLIT_RE = re.compile(r"[^0-9a-z]+")


class _Word:
    """One whitespace-separated word: its sub-tokens (split on hyphens etc.) and key."""

    __slots__ = ("key", "parts", "period")

    def __init__(self, raw: str) -> None:
        if raw.isalnum():  # the common case, without the regex
            self.period, self.parts, self.key = False, [raw], raw
            return
        self.period = "." in raw
        self.parts = [p for p in _SPLIT_RE.split(raw.replace(".", "")) if p]
        self.key = "".join(self.parts)


def _words(text: str) -> list[_Word]:
    return [w for w in map(_Word, text.split()) if w.parts]


def _clean(value: str) -> str:
    # ASCII + case fold first, so that "José" and "JOSE" give the same tokens.
    text = (value if value.isascii() else unidecode(value)).casefold()
    return _APOSTROPHES_RE.sub("", text) if "'" in text or "`" in text else text


def _is_title(word: _Word, following: int) -> bool:
    titles, name_titles, *_ = _word_sets()
    if word.key in _COMMON_TITLES:
        return True
    if word.key not in titles:
        return False
    if word.key in name_titles:
        return word.period
    # Rarer titles ("Judge", "Capt") need two more words, so "Major Smith" stays a name.
    return word.period or following >= 2


def _is_suffix(word: _Word, preceding: int) -> bool:
    _, _, strong, weak, *_ = _word_sets()
    return (word.key in strong) or (word.key in weak and preceding >= 2)


def _strip_titles(words: list[_Word]) -> list[_Word]:
    start = 0
    while len(words) - start > 1 and _is_title(words[start], len(words) - start - 1):
        start += 1
    return words[start:]


def _strip_suffixes(words: list[_Word]) -> list[_Word]:
    end = len(words)
    while end > 1 and _is_suffix(words[end - 1], end - 1):
        end -= 1
    return words[:end]


def _reorder_comma_parts(text: str) -> list[_Word]:
    """'Smith, Bob' -> Bob Smith; parts made only of suffixes ('..., Jr.') are dropped."""
    if "," not in text:
        return _words(text)
    _, _, strong, weak, _, known_names = _word_sets()
    parts = [_words(p) for p in text.split(",")]
    parts = [p for p in parts if p]
    kept = parts[:1] + [
        p
        for p in parts[1:]
        if not all(w.key in strong or (w.key in weak and w.key not in known_names) for w in p)
    ]
    if len(kept) == 2:
        return kept[1] + kept[0]
    return [w for p in kept for w in p]


def normalize_name(value: str) -> str:
    """Normalise a person's full name (or one name part) for matching.

    1. ASCII (unidecode), case fold, apostrophes removed ("O'Brien" -> "obrien"), other
       punctuation splits words ("Mary-Jane" -> "mary jane").
    2. "Last, First [Middle]" is reordered to "first middle last"; comma parts made only
       of suffixes ("Smith, Robert, Jr.") are dropped.
    3. Leading titles from nameparser are removed: Mr/Mrs/Ms/Miss/Mx/Dr/Prof/Rev/Sir/Dame
       always (when a word follows), other titles only when written with a period or
       followed by two words; the last word is never removed.
    4. Trailing suffixes from nameparser are removed: Jr/Sr/II/III/Esq... after any word,
       degrees (PhD, MD, MA...) and single letters only after two words ("Jack Ma" stays).
    5. The last word (with surname prefixes such as "van", "de", "mc" before it) is the
       surname; every sub-token of the words before it is a given name and is replaced by
       :func:`canonical_given_name` ("Bob" -> "robert"). A single word is treated as a
       given name.
    """
    words = _reorder_comma_parts(_clean(value))
    words = _strip_suffixes(_strip_titles(words))
    if not words:
        return ""
    prefixes = _word_sets()[4]
    surname_start = len(words) - 1 if len(words) > 1 else len(words)
    while surname_start > 1 and words[surname_start - 1].key in prefixes:
        surname_start -= 1
    tokens: list[str] = []
    for i, word in enumerate(words):
        if i < surname_start:
            tokens.extend(canonical_given_name(p) for p in word.parts)
        else:
            tokens.extend(word.parts)
    return " ".join(tokens)


def normalize_first_name(value: str) -> str:
    """Normalise a given-name column: like :func:`normalize_name` without name order.

    ASCII, case fold, punctuation as in ``name``, leading titles removed, and only the
    first word's sub-tokens get the nickname mapping ("Bob Lee" -> "robert lee",
    "Mary-Kate" -> "mary katherine"); commas are plain separators here.
    """
    words = _strip_titles(_words(_clean(value).replace(",", " ")))
    if not words:
        return ""
    tokens = [canonical_given_name(p) for p in words[0].parts]
    for word in words[1:]:
        tokens.extend(word.parts)
    return " ".join(tokens)


def split_full_name(value: str) -> tuple[str | None, str | None]:
    """(first, last) of a full name, as written: "Dr. Bob van Dyke Jr." -> ("Bob", "van Dyke"),
    "Smith, Bob" -> ("Bob", "Smith"). Titles and suffixes are dropped by the same rules as
    :func:`normalize_name`; a single word is a first name. Fast enough for millions of names
    (nameparser's HumanName took about 1 ms a name)."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    _, _, strong, weak, prefixes, known_names = _word_sets()

    def only_suffixes(part: str) -> bool:
        words = _words(_clean(part))
        return all(w.key in strong or (w.key in weak and w.key not in known_names) for w in words)

    parts = parts[:1] + [p for p in parts[1:] if not only_suffixes(p)]
    text = f"{parts[1]} {parts[0]}" if len(parts) == 2 else " ".join(parts)
    raw = [w for w in text.split() if _Word(_clean(w)).parts]
    keys = [_Word(_clean(w)) for w in raw]
    start, end = 0, len(raw)
    while end - start > 1 and _is_title(keys[start], end - start - 1):
        start += 1
    while end - start > 1 and _is_suffix(keys[end - 1], end - 1 - start):
        end -= 1
    raw, keys = raw[start:end], keys[start:end]
    if not raw:
        return None, None
    if len(raw) == 1:
        return raw[0], None
    surname_start = len(raw) - 1
    while surname_start > 1 and keys[surname_start - 1].key in prefixes:
        surname_start -= 1
    return raw[0], " ".join(raw[surname_start:])


# --- given-name equivalence -----------------------------------------------------------


@cache
def given_name_pairs() -> frozenset[tuple[str, str]]:
    """Pairs (a, b), a < b, of lower-case given names that may name the same person: one is
    listed as a nickname of the other ("jack", "john"; "christina", "tina"; "sam",
    "samantha"), in the ``nicknames`` data or :data:`PREFERRED_FORMAL`. Each pair is listed
    as written and as :func:`canonical_given_name` normalises both sides, so it applies to
    values compared with or without the ``first_name`` step."""
    links = {(nick, formal) for nick, formals in _nicknamer().canonical_lookup.items()
             for formal in formals}  # fmt: skip
    links |= set(PREFERRED_FORMAL.items())
    pairs: set[tuple[str, str]] = set()
    for nick, formal in links:
        for a, b in ((nick, formal), (canonical_given_name(nick), canonical_given_name(formal))):
            if a != b:
                pairs.add((min(a, b), max(a, b)))
    return frozenset(pairs)


def same_given_name(a: str, b: str) -> bool:
    """Whether two lower-case given names may name the same person (see
    :func:`given_name_pairs`); equal names do."""
    return a == b or (min(a, b), max(a, b)) in given_name_pairs()
