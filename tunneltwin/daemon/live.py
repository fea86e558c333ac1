"""The daemon's live page (``/live``): the replay report's charts, fed by the HTTP API.

One HTML string with everything inlined (uPlot, our charts, the page's script), so it works
on a control network with no internet. It holds no plant data: it reads the API's routes
and event stream with the token given in its address (``/live?token=...``).
"""

from __future__ import annotations

import json
from importlib.resources import files

from kernel.site import Site
from scenarios.report import page_head

PAGE = """<h1>tunneltwin: <span id="station"></span></h1>
<p id="status">connecting...</p>
<div class="panels"><section><h3>Pumps</h3><table class="kpi" id="pumps"></table></section>
<section><h3>Operator</h3><p id="operator">-</p><h3>Alerts</h3><ul id="alerts"></ul></section></div>
<p class="hint">The last day and the plan ahead, updated each tick. Drag to zoom, double-click to reset,
click a legend entry to hide it.</p><div id="charts"></div>"""


def live_page(site: Site | None) -> str:
    config = {"station": site.name if site else "", "zone": site.timezone if site else "UTC",
              "limits": None if site is None else {
                  "min_level_m": site.rules.min_level_m, "alarm_level_m": site.rules.alarm_level_m,
                  "max_level_m": site.rules.max_level_m, "max_outflow_m3h": site.rules.max_outflow_m3h}}
    script = (files("tunneltwin.daemon") / "live.js").read_text()
    return (f"{page_head('tunneltwin live')}<body>{PAGE}"
            f"<script id='config' type='application/json'>{json.dumps(config)}</script>"
            f"<script>{script}</script></body></html>\n")
