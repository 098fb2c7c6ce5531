"""Publishers indexed by their lookup keys, per provider: selection never scans.

Buckets are tuples replaced whole under a writer lock (copy on write), so request
threads read without locking while publishers are added and removed.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from tppolicy.decide.decision import Decision
from tppolicy.language import ast as A
from tppolicy.language.bind import bind_rules
from tppolicy.language.check import CheckedProvider
from tppolicy.language.compile import (
    Check,
    LookupFunction,
    Predicate,
    Template,
    TemplatePredicate,
    compile_lookup,
    compile_required,
    compile_template,
)
from tppolicy.native import EXTENSION_WANTED as EXTENSION_WANTED

# The C quick table is wanted unless `TPPOLICY_NO_EXTENSION=1` says otherwise, or the
# interpreter runs without a GIL (`tppolicy.native`).
_QuickTable: Any = None
if EXTENSION_WANTED:
    # compiled at install (hatch_build.py); without a C compiler, a dict does the job
    with contextlib.suppress(ImportError):
        from tppolicy.decide._quicktable import QuickTable as _QuickTable


class DictTable(dict):  # type: ignore[type-arg]
    """The quick table without the C extension: a dict of key -> value, with the reads
    and the store of the C table (`_quicktable.c`: `put`, `prefetch`, `aux`, `value`).
    Each key's (aux, value) pair is also kept whole in `entries` (one assignment each:
    a reader sees a key's old pair or its new one), made sparse after a bulk load."""

    __slots__ = ("entries",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.entries: dict[str, tuple[Any, Any]] = {key: (None, value)
                                                     for key, value in self.items()}

    def put(self, key: str, value: Any, aux: Any) -> None:
        """`table[key] = value`, with `aux` kept beside it."""
        self.entries[key] = (aux, value)
        dict.__setitem__(self, key, value)

    def __setitem__(self, key: str, value: Any) -> None:
        self.put(key, value, None)

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        del self.entries[key]

    def pop(self, key: str, *default: Any) -> Any:
        """As a dict's."""
        self.entries.pop(key, None)
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Any]:
        """As a dict's."""
        key, value = dict.popitem(self)
        self.entries.pop(key, None)
        return key, value

    def setdefault(self, key: str, default: Any = None) -> Any:
        """As a dict's."""
        if key not in self:
            self.put(key, default, None)
        return self[key]

    def update(self, *args: Any, **values: Any) -> None:
        """As a dict's (each value stored without an aux)."""
        for key, value in dict(*args, **values).items():
            self.put(key, value, None)

    def clear(self) -> None:
        """As a dict's."""
        dict.clear(self)
        self.entries.clear()

    def prefetch(self, key: str) -> None:
        """Nothing to ask of the CPU here (the C table's asks for the key's slot)."""

    def aux(self, key: str) -> Any:
        """The aux stored beside the key's value (None: absent or none)."""
        entry = self.entries.get(key)
        return None if entry is None else entry[0]

    def value(self, key: str, aux: Any) -> Any:
        """The key's value if its aux is still `aux` (that object), else None."""
        entry = self.entries.get(key)
        return entry[1] if entry is not None and entry[0] is aux else None

    def sparse(self) -> DictTable:
        """A copy whose `entries` are in a sparse dict (`sparse_copy`)."""
        copy = DictTable()
        dict.update(copy, self)
        copy.entries = sparse_copy(self.entries)
        return copy


# The class of `ProviderIndex.quick`: the C table (`_quicktable.c`: a random lookup among
# a million publishers reads one slot of two cache lines, where a dict reads its index,
# its entry and the key object), else a `DictTable` (sparse after a bulk load).
QUICK_TABLE: Callable[[], Any] = _QuickTable if _QuickTable is not None else DictTable

NO_SLOTS: tuple[Any, ...] = ()
_T = TypeVar("_T")
_SEPARATOR = "\x1f"  # never in a publisher's key: its fields are printable ASCII


def lookup_text(key: tuple[Any, ...]) -> str:
    """A lookup key as one string, for a host's database column: `bucket_key` when
    every part is a string, else the parts as JSON (types kept: 1 is not "1")."""
    joined = bucket_key(key)
    return joined if isinstance(joined, str) else "\x1e" + json.dumps(list(key))


def bucket_key(key: tuple[Any, ...]) -> Any:
    """The index's key for a lookup key: one string when every part is a string (a
    cold lookup among a million publishers then touches one object, not one per part),
    else the tuple. Injective: a token part holding the separator makes more parts."""
    try:
        return _SEPARATOR.join(key)
    except TypeError:
        return key


class Record:
    """One trusted publisher as the index holds it; never changed once indexed
    (a change is a new record under the same id).

    `predicate(claims, slots)` decides: the provider's template with this
    publisher's slots, or (for a publisher block with its own rules) a function
    compiled for it alone.
    """

    __slots__ = ("_decisions", "_first", "added_by", "created", "fields", "id", "key", "learns",
                 "name", "pending_project", "predicate", "prefer", "projects", "provider",
                 "rules", "slots")

    def __init__(self, id: str, provider: str, name: str | None, projects: tuple[str, ...],
                 pending_project: str | None, fields: tuple[Any, ...], key: tuple[Any, ...],
                 prefer: tuple[Any, ...], slots: tuple[Any, ...], predicate: TemplatePredicate,
                 rules: tuple[A.Rule, ...] | None = None, added_by: str | None = None,
                 created: float = 0.0, learns: tuple[A.Learn, ...] = ()) -> None:
        self.id = id
        self.provider = provider
        self.name = name
        self.projects = projects
        self.pending_project = pending_project
        self.fields = fields  # in the provider's field order
        self.key = key
        self.prefer = prefer
        self.slots = slots
        self.predicate = predicate
        self.rules = rules  # own rules (publisher blocks), else the provider's template
        self.added_by = added_by
        self.created = created
        # The `learn` items bound with this publisher's fields (trust on first use):
        # set before the record is indexed, never after.
        self.learns = learns
        self._first: Decision | None = None  # the first decision made
        self._decisions: dict[str | None, Decision] | None = None  # for other issuers

    def __repr__(self) -> str:
        return f"Record({self.id!r}, {self.provider!r}, {self.label!r})"

    def replace(self, **changes: Any) -> Record:
        """A new record with some attributes changed (this one is never changed)."""
        values = {name: getattr(self, name) for name in (
            "id", "provider", "name", "projects", "pending_project", "fields", "key", "prefer",
            "slots", "predicate", "rules", "added_by", "created", "learns")}
        values.update(changes)
        return Record(**values)

    @property
    def pending(self) -> bool:
        """Whether this is a pending publisher (its project does not exist yet)."""
        return self.pending_project is not None

    @property
    def label(self) -> str:
        """How decisions name the publisher: its name, else its kind, id and provider."""
        if self.name:
            return self.name
        kind = "pending publisher" if self.pending else "publisher"
        return f"{kind} {self.id} ({self.provider})"

    @property
    def all_projects(self) -> tuple[str, ...]:
        """The projects it may publish to (its pending project, for a pending one)."""
        return (self.pending_project,) if self.pending_project is not None else self.projects

    def allows(self, claims: Mapping[str, Any]) -> bool:
        """Whether its rules allow these claims."""
        return self.predicate(claims, self.slots)

    def field_values(self, provider: CheckedProvider) -> dict[str, Any]:
        """Its field values by name."""
        return dict(zip(provider.fields, self.fields, strict=True))

    def concrete_rules(self, provider: CheckedProvider) -> tuple[A.Rule, ...]:
        """The rules as `tppolicy compile` shows them: for explanations, never hot."""
        if self.rules is not None:
            return self.rules
        return bind_rules(provider.rules, self.field_values(provider))

    def decision(self, issuer: str | None) -> Decision:
        """The allowed decision without explanation, made once per issuer."""
        first = self._first
        if first is None:
            first = self._first = Decision(True, self.provider, self.label, self.all_projects,
                                           self.pending, (), issuer=issuer, record=self)
        if first.issuer == issuer:
            return first
        decisions = self._decisions
        if decisions is None:
            decisions = self._decisions = {}
        decision = decisions.get(issuer)
        if decision is None:
            decision = Decision(True, self.provider, self.label, self.all_projects,
                                self.pending, (), issuer=issuer, record=self)
            decisions[issuer] = decision
        return decision


_SHARED_CLASSES = frozenset({str, int, bool, type(None)})
_FLAT_SHAPES: dict[tuple[type, ...], bool] = {}  # item classes -> all shared or tuple
SETTLE_FROM = 4096  # quick entries: below, a table stays in the CPU caches anyway
_FILLER = "\x00\x00"  # fillers' prefix (settle); a filler never outlives the rebuild


def sparse_copy(table: dict[str, _T]) -> dict[str, _T]:
    """A copy of `table` (str keys) in a hash table at least three times its size (a
    dict's own is 1.5 to 3 times: a million keys fill 48% of theirs).

    A lookup that finds its key probed a slot holding another key first for 36% of a
    million keys, 14% in a table three times larger: each such probe reads another
    slot, entry and key, three cache lines that a random lookup among a million takes
    from memory. CPython sizes a dict that outgrows its table at three times its
    entries: fillers are added until that happens (`sys.getsizeof` changes), then
    deleted; the keys were placed in the new table before the fillers, so no lookup of
    a key passes a filler's empty slot. Only speed depends on this: elsewhere (or if a
    future CPython sizes otherwise) the copy is an ordinary copy."""
    copy = dict(table)
    size = sys.getsizeof(copy)
    fillers: list[str] = []
    while sys.getsizeof(copy) == size and len(fillers) <= 2 * len(table) + 8:
        batch = [f"{_FILLER}{n}" for n in range(len(fillers), len(fillers) + 256)]
        copy.update(dict.fromkeys(batch))  # type: ignore[arg-type]
        fillers += batch  # a few past the resize cost nothing: deleted with the others
        if len(copy) != len(table) + len(fillers):  # a filler was a key (never a lookup
            return dict(table)  # key, which is printable): an ordinary copy
    for filler in fillers:
        del copy[filler]
    return copy


def _shape_signature(value: Any) -> Any:
    """What two shapes share exactly when they are the same values: each value with its
    class (1, 1.0 and True are equal, not the same), through tuples. None for a value of
    another class (never shared: its equality may not be sameness, as -0.0 == 0.0).
    A flat tuple (most shapes: strings, ints, bools, None, empty tuples) is signed
    (its classes, itself) in one pass: every other signature starts with a class,
    never a tuple of classes."""
    cls = value.__class__
    if cls is tuple:
        classes = tuple(map(type, value))
        flat = _FLAT_SHAPES.get(classes)
        if flat is None:
            flat = all(c in _SHARED_CLASSES or c is tuple for c in classes)
            if len(_FLAT_SHAPES) < 4096:
                _FLAT_SHAPES[classes] = flat
        if flat and (tuple not in classes
                     or not any(item for item in value if item.__class__ is tuple)):
            return classes, value
    if cls is tuple:
        parts = []
        for item in value:
            part = _shape_signature(item)
            if part is None:
                return None
            parts.append(part)
        return (tuple, *parts)
    if cls in _SHARED_CLASSES:
        return cls, value
    return None


def _records(found: Record | tuple[Record, ...] | None) -> tuple[Record, ...]:
    if found is None:
        return ()
    return (found,) if isinstance(found, Record) else found


def _compiled(provider: CheckedProvider, part: str,
              compile_part: Callable[[CheckedProvider], _T]) -> _T:
    """`compile_part(provider)`, compiled once per provider (`CheckedProvider.compiled`):
    every policy and engine holding the shipped providers shares their functions. Two
    threads may both compile it; either result serves."""
    made = provider.compiled.get(part)
    if made is None:
        made = provider.compiled.setdefault(part, compile_part(provider))
    return made  # type: ignore[no-any-return]


class ProviderIndex:
    """A provider's compiled parts and its publishers, indexed by lookup key."""

    def __init__(self, provider: CheckedProvider) -> None:
        self.checked = provider
        self.required: Predicate = _compiled(provider, "required", compile_required)
        self.lookup: LookupFunction = _compiled(provider, "lookup", compile_lookup)
        self._template: Template | None = None
        # The template's one-function decision (`Template.check`), once it is built, and
        # its entries: bucket key -> the allowed decision, for each key that a single
        # normal publisher of the template (learning nothing) holds, with the entry's
        # shape as its aux: (*prefer, *kept slots), one object for all the publishers
        # configured alike.
        self.check: Check | None = None
        self.quick: Any = QUICK_TABLE()  # a QuickTable or a DictTable: key -> Decision
        # signature -> [the shape, how many entries hold it] (see `_shape_signature`)
        self._shapes: dict[Any, list[Any]] = {}
        # The issuer of the decisions in `quick` (a token of another issuer of the
        # provider gets its own decision from the record).
        self.issuer: str | None = provider.issuers[0] if provider.issuers else None
        # bucket key -> the record, or a tuple of records sharing the key
        self.normal: dict[Any, Record | tuple[Record, ...]] = {}
        self.pending: dict[Any, Record | tuple[Record, ...]] = {}
        self._lock = threading.Lock()
        # Odd while a record moves between `normal` and `pending` (`replace`), bumped
        # before and after: a lock-free `select` that found nothing and saw it change
        # may have read the normal bucket before the move and the pending one after.
        self._moves = 0
        self._count = 0
        self._settled = 0  # quick entries when `settle` last rebuilt their table

    @property
    def template(self) -> Template:
        """The provider's rules compiled once for every publisher (built on first use)."""
        if self._template is None:
            self._template = _compiled(self.checked, "template", compile_template)
            self.check = self._template.check
        return self._template

    def __len__(self) -> int:
        return self._count

    def _requick(self, key: Any) -> None:
        """The quick entry of a bucket key after its normal bucket changed (under the
        lock): one for a single template record learning nothing, else none."""
        found = self.normal.get(key)
        template = self._template
        shape = None
        if self.quick:
            shape = self.quick.aux(key)
            self.quick.pop(key, None)
        if shape is not None:
            self._release(shape)
        if found.__class__ is not Record or template is None or key.__class__ is not str \
                or key.count(_SEPARATOR) != len(self.checked.keys) - 1:
            # Not one record, or a part holding the separator: Template.check relies on
            # equal keys having equal parts.
            return
        assert isinstance(found, Record)
        if found.predicate is not template.predicate or found.learns or found.rules is not None:
            return
        slots = found.slots
        # The entry's shape is its aux: a check runs the rules against it, then takes
        # the decision only if the entry still holds that shape (`QuickTable.value`).
        self.quick.put(key, found.decision(self.issuer), self._share(
            (*found.prefer, *map(slots.__getitem__, template.kept))))

    def settle(self) -> None:
        """After a bulk load: the quick entries of a dict in a sparser one (`sparse_copy`),
        when they grew by a quarter since the last time. Readers see the old table or
        the new one, both whole (the swap is one assignment, made under the lock)."""
        with self._lock:
            count = len(self.quick)
            if count < SETTLE_FROM or count * 4 < self._settled * 5 \
                    or self.quick.__class__ is not DictTable:  # the C table is sparse already
                return
            self.quick = self.quick.sparse()
            self._settled = count

    def _share(self, shape: tuple[Any, ...]) -> tuple[Any, ...]:
        """The one object holding this shape (under the lock): a random check then finds
        the values of most publishers in the CPU caches, with the code that reads them."""
        signature = _shape_signature(shape)
        if signature is None:
            return shape
        held = self._shapes.get(signature)
        if held is None:
            held = self._shapes[signature] = [shape, 0]
        held[1] += 1
        shared: tuple[Any, ...] = held[0]
        return shared

    def _release(self, shape: tuple[Any, ...]) -> None:
        """An entry holding `shape` is gone (under the lock): forget a shape no entry holds."""
        signature = _shape_signature(shape)
        held = self._shapes.get(signature) if signature is not None else None
        if held is not None and held[0] is shape:
            held[1] -= 1
            if held[1] == 0:
                del self._shapes[signature]

    def add(self, record: Record) -> None:
        """Index a record under its lookup key."""
        with self._lock:
            index = self.pending if record.pending else self.normal
            key = bucket_key(record.key)
            bucket = _records(index.get(key))
            index[key] = (*bucket, record) if bucket else record
            if not record.pending:
                self._requick(key)
            self._count += 1

    def remove(self, record: Record) -> bool:
        """Take a record out; False if it was not indexed."""
        with self._lock:
            return self._take_out(record)

    def _take_out(self, record: Record) -> bool:
        """`remove` (under the lock)."""
        index = self.pending if record.pending else self.normal
        key = bucket_key(record.key)
        bucket = _records(index.get(key))
        kept = tuple(r for r in bucket if r is not record)
        if len(kept) == len(bucket):
            return False
        if kept:
            index[key] = kept if len(kept) > 1 else kept[0]
        else:
            del index[key]
        if not record.pending:
            self._requick(key)
        self._count -= 1
        return True

    def replace(self, old: Record, new: Record) -> None:
        """Put `new` where `old` is, so that a reader sees one or the other at every
        moment, never neither: in place when both share a bucket, else `new` is added
        before `old` goes. `old` absent: `new` is added."""
        same_bucket = old.pending == new.pending and bucket_key(old.key) == bucket_key(new.key)
        with self._lock:
            index = self.pending if new.pending else self.normal
            key = bucket_key(new.key)
            bucket = _records(index.get(key))
            if same_bucket and any(r is old for r in bucket):
                swapped = tuple(new if r is old else r for r in bucket)
                index[key] = swapped if len(swapped) > 1 else swapped[0]
                if not new.pending:
                    self._requick(key)
                return
            moving = old.pending != new.pending
            if moving:
                self._moves += 1
            index[key] = (*bucket, new) if bucket else new
            if not new.pending:
                self._requick(key)
            self._count += 1
            self._take_out(old)
            if moving:
                self._moves += 1

    def bucket(self, key: tuple[Any, ...], pending: bool = False) -> tuple[Record, ...]:
        """The records indexed under a lookup key."""
        return _records((self.pending if pending else self.normal).get(bucket_key(key)))

    def records(self) -> Iterator[Record]:
        """Every record, pending ones first."""
        for index in (self.pending, self.normal):
            for bucket in list(index.values()):
                yield from _records(bucket)

    def choose(self, found: Record | tuple[Record, ...] | None,
               wanted: tuple[Any, ...]) -> Record | None:
        """PyPI's order: the first `prefer` that some candidate satisfies chooses it."""
        if not found:
            return None
        candidates = (found,) if found.__class__ is Record else found
        assert isinstance(candidates, tuple)
        if not wanted:
            return candidates[0]
        for position, value in enumerate(wanted):
            try:
                for candidate in candidates:
                    if candidate.prefer[position] == value:
                        return candidate
            except Exception:  # a mistyped claim compares with nothing
                continue
        return None

    def select(self, claims: Mapping[str, Any], candidates_of: Callable[
            [tuple[Any, ...], bool], tuple[Record, ...]] | None = None,
               ) -> tuple[Record | None, Record | None]:
        """(the first candidate whose rules allow, the candidate chosen but refused).
        `candidates_of(key, pending)`, if given, finds the candidates (a host's
        database, `Engine(lookup=...)`) instead of this index's own buckets.

        Normal publishers are tried before pending ones (PyPI tries pending first): a
        pending publisher never takes a token from an existing normal publisher, whoever
        registered it (a pending publisher copying a victim's identity would otherwise
        scope the victim's next credential to the copier's project).

        Without a lock, a reader racing a pending publisher's conversion (`replace`
        adds the normal record, then takes the pending one out) could read the normal
        bucket before and the pending one after: neither. A search that finds nothing
        while a record moved between them is made again under the lock."""
        moves = self._moves
        allowed, refused = self._select(claims, candidates_of)
        if allowed is None and candidates_of is None and (moves & 1 or self._moves != moves):
            with self._lock:
                return self._select(claims, candidates_of)
        return allowed, refused

    def _select(self, claims: Mapping[str, Any], candidates_of: Callable[
            [tuple[Any, ...], bool], tuple[Record, ...]] | None,
                ) -> tuple[Record | None, Record | None]:
        """`select`, once."""
        try:
            found, wanted = self.lookup(claims)
            key = bucket_key(found)
        except Exception:  # a key the token cannot give matches nothing
            return None, None
        refused: Record | None = None
        for pending, index in ((False, self.normal), (True, self.pending)):
            if candidates_of is not None:  # a failing database propagates: no decision
                candidates: Record | tuple[Record, ...] | None = candidates_of(found, pending)
            elif not index:
                continue
            else:
                try:
                    candidates = index.get(key)
                except Exception:  # a claim of the wrong type cannot be hashed
                    break
            candidate = self.choose(candidates, wanted)
            if candidate is None:
                continue
            if candidate.predicate(claims, candidate.slots):
                return candidate, refused
            if refused is None:
                refused = candidate
        return None, refused
