"""JSON text built in the engine, the same on DuckDB and Spark.

Output tables hold JSON as text (SemanticData, Measures, Segments). Each engine has its own
JSON functions and they disagree (Spark drops null fields, formats timestamps its own way), so
the text is assembled from strings here: the same characters on every engine.
"""

from __future__ import annotations

import ibis


def escape(value: ibis.StringValue) -> ibis.StringValue:
    """A string's characters escaped for a JSON string literal (without the quotes)."""
    return (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def value(v: ibis.Value) -> ibis.StringValue:
    """One value as JSON text: strings quoted, numbers and booleans bare, dates ISO, else null."""
    dtype = v.type()
    if dtype.is_boolean():
        text = ibis.ifelse(v, "true", "false")
    elif dtype.is_numeric():
        text = v.cast("string")
    elif dtype.is_timestamp():
        text = '"' + v.strftime("%Y-%m-%dT%H:%M:%S") + '"'
    elif dtype.is_date():
        text = '"' + v.strftime("%Y-%m-%d") + '"'
    else:
        text = '"' + escape(v.cast("string")) + '"'
    return ibis.coalesce(text, ibis.literal("null"))


def obj(fields: dict[str, ibis.Value]) -> ibis.StringValue:
    """A JSON object with these keys, in this order."""
    if not fields:
        return ibis.literal("{}")
    parts: list[ibis.StringValue] = []
    for i, (key, v) in enumerate(fields.items()):
        prefix = ("{" if i == 0 else ",") + '"' + key.replace('"', '\\"') + '":'
        parts.append(ibis.literal(prefix) + value(v))
    out = parts[0]
    for part in parts[1:]:
        out = out + part
    return out + "}"
