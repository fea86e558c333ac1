"""Plant time: every timestamp inside is the site's standard time, a fixed offset from UTC.

A recorded file may carry UTC offsets, ``Z``, or naive wall-clock times of the site's time
zone (the site TOML's ``timezone``). Inside, each becomes a naive time on the site's
*standard* clock: UTC plus the zone's offset without daylight saving (UTC+2 for
Europe/Helsinki). That clock has no gaps and no repeated hours, so a day across a DST change
stays evenly spaced; it is one fixed offset from UTC, so it is as unambiguous as UTC; and in
winter it is the wall clock, so a winter file's times read the same inside as in the file.
Outputs write it with its offset (``2024-11-18T06:00:00+02:00``).

Naive wall-clock times are placed by the zone's rules. In the autumn the repeated hour is
told apart by row order (the first pass is summer time), with a warning; a time the spring
change skips is an error naming the row.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel.errors import DataError


class TimeZoneWarning(UserWarning):
    """Wall-clock times were resolved with the site's DST rules (the message says where)."""


def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name; ValueError names the name (pydantic turns it into a field error)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'Europe/Helsinki' or 'UTC')") from exc


@dataclass(frozen=True)
class SiteClock:
    zone_name: str = "UTC"
    tz: ZoneInfo = field(init=False, repr=False, compare=False)
    offset: timedelta = field(init=False, repr=False, compare=False)  # standard time minus UTC

    def __post_init__(self) -> None:
        tz = zone(self.zone_name)
        probe = datetime(2001, 1, 1, tzinfo=tz)
        offset = (probe.utcoffset() or timedelta(0)) - (probe.dst() or timedelta(0))
        object.__setattr__(self, "tz", tz)
        object.__setattr__(self, "offset", offset)

    def from_aware(self, t: datetime) -> datetime:
        """A time with an offset, as plant time."""
        return (t.astimezone(UTC) + self.offset).replace(tzinfo=None)

    def plant(self, t: datetime) -> datetime:
        """A time someone typed (a flag, a TOML): with an offset it is converted; naive, it is
        taken as plant time already."""
        return self.from_aware(t) if t.tzinfo is not None else t

    def stamp(self, t: datetime) -> str:
        """Plant time as ISO 8601 with its offset, for outputs."""
        return t.replace(tzinfo=timezone(self.offset)).isoformat()

    def plant_times(self, source: str, column: str, stamps: list[datetime], first_row: int) -> list[datetime]:
        """A file's times (all with offsets, or all naive wall clock) as plant time."""
        aware = [t.tzinfo is not None for t in stamps]
        if any(aware) and not all(aware):
            i = aware.index(not aware[0])
            raise DataError(f"{source}: column {column!r}, row {first_row + i}: {stamps[i].isoformat()} "
                            f"{'has' if aware[i] else 'has no'} UTC offset, unlike row {first_row}; "
                            "a file needs one or the other throughout")
        if all(aware):
            return [self.from_aware(t) for t in stamps]
        return self._from_wall_clock(source, column, stamps, first_row)

    def _from_wall_clock(self, source: str, column: str, stamps: list[datetime], first_row: int) -> list[datetime]:
        out: list[datetime] = []
        repeated: list[int] = []
        for i, t in enumerate(stamps):
            first, second = (self.from_aware(t.replace(tzinfo=self.tz, fold=f)) for f in (0, 1))
            back = (first - self.offset).replace(tzinfo=UTC).astimezone(self.tz).replace(tzinfo=None)
            if back != t:  # the spring change skips this wall-clock time
                raise DataError(f"{source}: column {column!r}, row {first_row + i}: {t.isoformat()} does not "
                                f"exist in {self.zone_name} (the clocks went forward); "
                                "give the file UTC offsets, or the site the zone its times are in")
            if first != second:  # the autumn change repeats it: the earlier pass first
                later = bool(out) and out[-1] >= first
                repeated.append(i)
                out.append(second if later else first)
            else:
                out.append(first)
        if repeated:
            warnings.warn(f"{source}: column {column!r}: {len(repeated)} wall-clock times in the hour {self.zone_name} "
                          f"repeats when summer time ends (rows {first_row + repeated[0]}.."
                          f"{first_row + repeated[-1]}) placed by row order", TimeZoneWarning, stacklevel=3)
        return out


UTC_CLOCK = SiteClock("UTC")  # no site given: naive times are taken as they are
