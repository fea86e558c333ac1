"""tunneltwin: digital twin and receding-horizon pump control for a storage-tunnel pump station.

This package is the top of the layers: the CLI (``cli.py``), the settings object
(``settings.py``) and the daemon (``daemon/``). The kernel, twin, controller, adapters and
scenarios packages sit below it (README, "How it is built").
"""

__version__ = "0.2.0"
