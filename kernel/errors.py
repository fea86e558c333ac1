"""Our exception hierarchy: every failure a user can cause names where it came from."""


class TunneltwinError(Exception):
    """Base for errors we raise on purpose; the CLI prints these without a traceback."""


class ConfigError(TunneltwinError):
    """A config or scenario file is unreadable or holds a value that cannot be right."""


class DataError(TunneltwinError):
    """Recorded data cannot be used as it is (file, column and row are in the message)."""


class SetpointError(TunneltwinError):
    """A setpoint the plant cannot carry out: unknown pump, frequency out of range, NaN."""


class ScenarioEnded(TunneltwinError):
    """A simulated plant was asked to step past the end of its scenario."""


class PlantError(TunneltwinError):
    """Talking to the plant failed; adapters translate third-party errors into these."""


class PlantUnavailable(PlantError):
    """No connection to the plant (refused, dropped, server or broker down)."""


class PlantTimeout(PlantError):
    """The plant did not answer in time."""


class WriteRejected(PlantError):
    """The plant refused a setpoint, or reads back something other than what was written."""


class SecurityMismatch(ConfigError):
    """The plant's server offers no way in with our security settings, or is not the server
    whose certificate we pinned: retrying cannot mend it, the settings must change."""


class TagMapError(ConfigError):
    """A tag map names a node or topic the plant does not have, or a unit we cannot convert."""
