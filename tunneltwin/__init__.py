"""tunneltwin: digital twin and receding-horizon pump control for a storage-tunnel pump station.

This package is the shared kernel (site config, contracts, plant physics) and the single
place where the application is wired together (settings, CLI).
"""

__version__ = "0.1.0"
