"""Built-in plugins, registered through the same hooks as third-party ones.

`BUILTIN_PLUGINS` is what `plugins.manager.load_plugins` registers before the entry points
of the `relais.plugins` group: (registration name, module implementing hooks).
"""

from __future__ import annotations

from plugins.builtin import channel_types, connectors

BUILTIN_PLUGINS: list[tuple[str, object]] = [
    ("relais.channels", channel_types),
    ("relais.connectors", connectors),
]
