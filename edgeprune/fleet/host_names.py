"""What a device's `host` may be: a host name or an IP literal, nothing a shell or glob reads.

The host reaches ssh_config matching (and, in a user's own config, `%h` tokens), so a value
such as `x<({touch,Y})` must never get that far.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")


def is_host_name(value: str) -> bool:
    """True for `pi4-lab`, `board_1.local`, `Pi.Example.COM.`, `10.0.0.4`, `::1`, `fe80::1%eth0`."""
    if _is_ip_literal(value):
        return True
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253 or not name[0].isalnum():
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def _is_ip_literal(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
