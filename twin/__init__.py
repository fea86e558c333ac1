"""The plant twin: a pure model of tunnel and pumps, scheduled by SimPy. No I/O, no wall clock."""

from twin.twin import Twin

__all__ = ["Twin"]
