"""Our exception hierarchy: every failure a user can cause names where it came from."""


class TunneltwinError(Exception):
    """Base for errors we raise on purpose; the CLI prints these without a traceback."""


class ConfigError(TunneltwinError):
    """A config or scenario file is unreadable or holds a value that cannot be right."""


class DataError(TunneltwinError):
    """Recorded data cannot be used as it is (file, column and row are in the message)."""


class SetpointError(TunneltwinError):
    """A setpoint the plant cannot carry out: unknown pump, frequency out of range, NaN."""
