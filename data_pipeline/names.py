"""Stage 1, names: read name lists, normalise, merge aliases, and drop names too ambiguous to match.

Input: text files (one name per line, aliases after ``|``: ``Boris Vantanen | Bo Vantanen``), CSV or parquet files
with a name column and an optional alias column (a list, or a ``|``-separated string). Output: ``names.parquet``
(identity_id, name, aliases) and ``dropped.parquet`` (name, reason) — every input name ends in one of them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .common_words import COMMON_WORDS
from .normalise import normalise, without_accents
from .storage import check_inputs, is_remote, open_input
from .storage import suffix as url_suffix

TOKEN = re.compile(r"[^\W_]+(?:['.-][^\W_]+)*", re.UNICODE)  # on normalised text: typographic apostrophes are ASCII


def read_name_lists(
    paths: Iterable[str | Path],
    name_column: str = "name",
    alias_column: str | None = "aliases",
    storage_options: dict | None = None,
):
    """Yields (source, name, aliases) from every file (a local path or an fsspec URL), in order."""
    for path in paths:
        path = str(path) if is_remote(path) else str(Path(path))
        check_inputs([path], "name_lists", storage_options)
        suffix = url_suffix(path).lower()
        if suffix in (".txt", ".lst", ""):
            with open_input(path, storage_options, "rt", encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            for line in lines:
                if line.strip() and not line.lstrip().startswith("#"):
                    name, *aliases = line.split("|")
                    yield path, name, aliases
        elif suffix in (".csv", ".tsv"):
            with open_input(path, storage_options, "rt", newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                _require_columns(path, reader.fieldnames or [], name_column)
                for row in reader:
                    yield path, row[name_column], _split_aliases(row.get(alias_column) if alias_column else None)
        elif suffix == ".parquet":
            with open_input(path, storage_options) as handle:
                table = pq.read_table(handle)
            _require_columns(path, table.column_names, name_column)
            names = table.column(name_column).to_pylist()
            has_aliases = alias_column is not None and alias_column in table.column_names
            aliases = table.column(alias_column).to_pylist() if has_aliases else [None] * len(names)
            for name, alias in zip(names, aliases, strict=True):
                yield path, name, _split_aliases(alias)
        else:
            raise ValueError(f"name_lists: {path!r} is not a .txt, .csv, .tsv or .parquet file")


def _require_columns(path: str, found: list[str], *required: str) -> None:
    missing = [column for column in required if column not in found]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {found}")


def _split_aliases(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split("|")
    return list(value)


def ambiguity(name: str, common_words: frozenset[str], min_tokens: int) -> str | None:
    """Why a name would match captions that do not mean that person, or None if it is fine."""
    tokens = TOKEN.findall(name.lower())
    if not tokens:
        return "no_word"
    if len(tokens) < min_tokens:
        return "single_token" if len(tokens) == 1 else "too_few_tokens"
    if all(token in common_words for token in tokens):
        return "common_words"
    return None


def build_names(
    name_lists: list[str | Path],
    output: Path,
    name_column: str = "name",
    alias_column: str | None = "aliases",
    min_tokens: int = 2,
    extra_common_words: list[str] | None = None,
    fold_accents: bool = False,
    storage_options: dict | None = None,
) -> dict:
    """Writes ``names.parquet`` and ``dropped.parquet`` into ``output``; returns counts. The name lists may be fsspec
    URLs (``s3://...``), read with ``storage_options``.

    A name that normalises to one already seen merges into it (its aliases join). An alias claimed by two
    identities is removed from both (it would match either person) and recorded as dropped. With
    ``fold_accents``, every name and alias with accents gets its accent-folded form as one more alias ("Beyonce
    Knowles" for "Beyoncé Knowles"); a folded form that names two people is dropped the same way, as
    ``folded_alias_of_several_identities``.
    """
    common = COMMON_WORDS | frozenset(word.lower() for word in extra_common_words or [])
    identities: dict[str, dict] = {}  # normalised lower-case name → {"name", "aliases", "source"}
    dropped: list[dict] = []
    total = 0
    for source, raw_name, raw_aliases in read_name_lists(name_lists, name_column, alias_column, storage_options):
        total += 1
        name = normalise(raw_name or "")
        reason = ambiguity(name, common, min_tokens)
        if reason:
            dropped.append({"name": name or str(raw_name), "reason": reason, "source": source})
            continue
        if name.lower() in identities:  # a second line for one person: its aliases join the first
            first = identities[name.lower()]["name"]
            dropped.append({"name": name, "reason": f"merged_into:{first}", "source": source})
        entry = identities.setdefault(name.lower(), {"name": name, "aliases": set(), "source": source})
        for alias in map(normalise, raw_aliases):
            alias_reason = ambiguity(alias, common, min_tokens)
            if alias_reason:
                dropped.append({"name": alias, "reason": f"alias_{alias_reason}", "source": source})
            elif alias.lower() != name.lower():
                entry["aliases"].add(alias)
    folded = _accent_folded_aliases(identities, common, min_tokens, dropped) if fold_accents else {}
    dropped += _drop_shared_surfaces(identities, folded)
    if not identities:
        raise ValueError(
            f"name_lists: none of the {total} names is usable (all too ambiguous or empty); "
            f"reasons: {sorted({d['reason'] for d in dropped})}"
        )
    rows = sorted(identities.values(), key=lambda entry: entry["name"])
    table = pa.table(
        {
            "identity_id": pa.array(range(len(rows)), pa.int32()),
            "name": [row["name"] for row in rows],
            "aliases": pa.array([sorted(row["aliases"]) for row in rows], pa.list_(pa.string())),
        }
    )
    output = Path(output)
    pq.write_table(table, output / "names.parquet")
    dropped_schema = pa.schema([("name", pa.string()), ("reason", pa.string()), ("source", pa.string())])
    pq.write_table(pa.Table.from_pylist(dropped, schema=dropped_schema), output / "dropped.parquet")
    reasons: dict[str, int] = {}
    for row in dropped:
        reason = row["reason"].split(":")[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    kept_folded = sum(len(aliases) for aliases in folded.values())
    return {"names_read": total, "identities": len(rows), "accent_folded_aliases": kept_folded, "dropped": reasons}


def _accent_folded_aliases(identities: dict[str, dict], common, min_tokens: int, dropped: list[dict]):
    """{identity key: accent-folded forms of its name and aliases that it does not list yet}."""
    folded: dict[str, set[str]] = {}
    for key, entry in identities.items():
        forms = [entry["name"], *sorted(entry["aliases"])]
        listed = {form.lower() for form in forms}
        for form in forms:
            alias = without_accents(form)
            if alias.lower() in listed:
                continue
            reason = ambiguity(alias, common, min_tokens)
            if reason:
                dropped.append({"name": alias, "reason": f"folded_alias_{reason}", "source": entry["source"]})
            else:
                folded.setdefault(key, set()).add(alias)
    return folded


def _drop_shared_surfaces(identities: dict[str, dict], folded: dict[str, set[str]]) -> list[dict]:
    """Removes every alias (listed or accent-folded) that names several identities; returns the dropped rows.

    The folded aliases left join their identity's aliases.
    """
    owners: dict[str, set[str]] = {}  # lower-case surface form → the identities it names
    listed: dict[str, set[str]] = {}  # the same without the folded aliases: who caused a collision
    for key, entry in identities.items():
        for surface in [key, *(alias.lower() for alias in entry["aliases"])]:
            owners.setdefault(surface, set()).add(key)  # a name counts too: one's name, another's alias
            listed.setdefault(surface, set()).add(key)
        for alias in folded.get(key, ()):
            owners.setdefault(alias.lower(), set()).add(key)
    dropped = []
    for surface in sorted(owners):
        if len(owners[surface]) < 2:
            continue
        for key in owners[surface]:
            entry = identities[key]
            entry["aliases"] = {alias for alias in entry["aliases"] if alias.lower() != surface}
            folded[key] = {alias for alias in folded.get(key, ()) if alias.lower() != surface}
        several = len(listed.get(surface, ())) > 1
        reason = "alias_of_several_identities" if several else "folded_alias_of_several_identities"
        dropped.append({"name": surface, "reason": reason, "source": ""})
    for key, aliases in folded.items():
        identities[key]["aliases"] |= aliases
    return dropped


def load_names(path: Path) -> pa.Table:
    return pq.read_table(Path(path) / "names.parquet")
