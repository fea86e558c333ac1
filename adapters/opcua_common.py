"""What the OPC UA client and our simulator agree on: value types by field dimension."""

from __future__ import annotations

from asyncua import ua

# Numeric fields take the tag's `datatype` (default Double); these are fixed by meaning.
VARIANTS = {"time": ua.VariantType.DateTime, "status": ua.VariantType.String,
            "bool": ua.VariantType.Boolean, "count": ua.VariantType.UInt32}


def split_path(path: str) -> list[str]:
    return [part for part in path.split("/") if part]
