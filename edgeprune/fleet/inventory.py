"""The device inventory: a YAML file of boards, validated so a typo is caught before any SSH.

Schema (see configs/devices.example.yaml)::

    known_hosts: ~/.ssh/known_hosts     # optional, for every device
    ssh_config: ~/.ssh/config           # optional; hosts named there resolve through it
    defaults: {user: pi, python: python3, spool: ~/.edgeprune, ...}   # optional
    devices:
      - {name: pi4, host: pi4-lab, kind: raspberry_pi, tags: [arm64]}

A built-in device named `local` always exists: the agent as a subprocess on this host.
Every error names the file, the device and the field at fault.
"""

from __future__ import annotations

import difflib
import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgeprune.errors import UserError
from edgeprune.fleet.host_names import is_host_name
from edgeprune.fleet.jump_hosts import jump_chain
from edgeprune.fleet.known_hosts import DEFAULT_GLOBAL_KNOWN_HOSTS, DEFAULT_USER_KNOWN_HOSTS
from edgeprune.paths import data_dir  # re-exported: the old home of data_dir
from edgeprune.yaml_budget import echo, load_bounded_yaml

if TYPE_CHECKING:
    from edgeprune.fleet.ssh_config import SshConfig

LOCAL_DEVICE = "local"
INVENTORY_ENV = "EDGEPRUNE_INVENTORY"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
DeviceKind = Literal["raspberry_pi", "jetson", "linux", "local"]
DEFAULT_SPOOL = "~/.edgeprune"
DEFAULT_PYTHON = "python3"


class _DeviceFields(BaseModel):
    """Fields a device may set; `defaults:` may set the same ones (except name)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    host: str | None = Field(None, min_length=1, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    identity_file: str | None = None
    kind: DeviceKind | None = None
    tags: list[str] | None = None
    python: str | None = Field(None, min_length=1, max_length=4096, pattern=r"^[^\x00\n]+$")
    spool: str | None = Field(None, min_length=1, max_length=4096, pattern=r"^[^\x00\n]+$")
    known_hosts: str | None = None
    connect_timeout: float | None = Field(None, gt=0, le=600)
    command_timeout: float | None = Field(None, gt=0, le=86400)
    retries: int | None = Field(None, ge=0, le=20)

    @field_validator("tags")
    @classmethod
    def _tags_are_names(cls, tags: list[str] | None) -> list[str] | None:
        import re

        for tag in tags or []:
            if not re.match(NAME_PATTERN, tag):
                raise ValueError(
                    f"tag {tag!r} is not a name (letters, digits, '.', '_', '-'; at most 63)"
                )
        return tags

    @field_validator("host")
    @classmethod
    def _host_is_a_name(cls, host: str | None) -> str | None:
        if host is not None and not is_host_name(host):
            raise ValueError(
                "give a hostname, an IP address or a ~/.ssh/config Host: letters, digits, "
                "'.', '_' and '-', starting with a letter or digit (no shell or glob characters)"
            )
        return host


class _DeviceEntry(_DeviceFields):
    name: str = Field(pattern=NAME_PATTERN)


class _InventoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    known_hosts: str | None = None
    ssh_config: str | None = None
    defaults: _DeviceFields = Field(default_factory=_DeviceFields)
    devices: list[Any] = Field(default_factory=list)


@dataclass(frozen=True)
class Device:
    """One board, every connection detail resolved (inventory > ~/.ssh/config > defaults)."""

    name: str
    kind: str
    tags: tuple[str, ...] = ()
    host: str = ""
    hostname: str = ""
    port: int = 22
    user: str = ""
    identity_files: tuple[str, ...] = ()
    known_hosts: str = ""
    known_hosts_also: tuple[str, ...] = ()  # further UserKnownHostsFile entries, read only
    global_known_hosts: tuple[str, ...] = DEFAULT_GLOBAL_KNOWN_HOSTS
    python: str = DEFAULT_PYTHON
    spool: str = DEFAULT_SPOOL
    connect_timeout: float = 10.0
    command_timeout: float = 600.0
    retries: int = 2
    jumps: tuple[Device, ...] = ()  # ProxyJump hosts, first hop first

    @property
    def is_local(self) -> bool:
        return self.kind == LOCAL_DEVICE

    def describe(self) -> str:
        if self.is_local:
            return "this host (subprocess)"
        address = f"{self.user}@{self.hostname}:{self.port}"
        if self.jumps:  # the path matters: it says which bastion carries the connection
            address += " via " + ", ".join(f"{j.user}@{j.hostname}:{j.port}" for j in self.jumps)
        return address


@dataclass
class Inventory:
    """The devices of one inventory file plus the built-in `local`."""

    devices: dict[str, Device]
    path: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.devices)

    def select(
        self, names: list[str] | None = None, tags: list[str] | None = None, all_: bool = False
    ) -> list[Device]:
        """The devices named, tagged, or all of them; an unknown name or tag is a UserError."""
        names = split_names(names or [])
        tags = split_names(tags or [])
        if not (names or tags or all_):
            raise UserError("choose devices: give --device NAME, --tag TAG or --all")
        if all_:
            return list(self.devices.values())
        chosen: dict[str, Device] = {}
        for name in names:
            if name not in self.devices:
                hint = difflib.get_close_matches(name, self.names(), n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise UserError(
                    f"unknown device {name!r}{maybe}; {self._where()} has: {', '.join(self.names())}"
                )
            chosen[name] = self.devices[name]
        known_tags = sorted({t for d in self.devices.values() for t in d.tags})
        for tag in tags:
            tagged = [d for d in self.devices.values() if tag in d.tags]
            if not tagged:
                have = ", ".join(known_tags) if known_tags else "none"
                raise UserError(f"no device has tag {tag!r}; tags in {self._where()}: {have}")
            for device in tagged:
                chosen.setdefault(device.name, device)
        return list(chosen.values())

    def _where(self) -> str:
        return f"inventory {str(self.path)!r}" if self.path else "the built-in inventory"


def split_names(values: list[str]) -> list[str]:
    """`--device a,b --device c` -> [a, b, c] (order kept, duplicates dropped)."""
    out: list[str] = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def local_device() -> Device:
    """The built-in device: the agent run as a subprocess of this host's Python."""
    import sys

    return Device(
        name=LOCAL_DEVICE,
        kind=LOCAL_DEVICE,
        tags=(LOCAL_DEVICE,),
        python=sys.executable,
        spool=str(data_dir() / "local-spool"),
        retries=0,
    )


def default_inventory_path() -> Path | None:
    """`EDGEPRUNE_INVENTORY`, else ~/.config/edgeprune/devices.yaml when it exists."""
    env = os.environ.get(INVENTORY_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    candidate = Path(base) / "edgeprune" / "devices.yaml"
    return candidate if candidate.is_file() else None


def load_inventory(path: str | os.PathLike[str] | None = None) -> Inventory:
    """Read and validate an inventory (or the default one); `local` is always added."""
    chosen = Path(path).expanduser() if path is not None else default_inventory_path()
    devices = {LOCAL_DEVICE: local_device()}
    if chosen is None:
        return Inventory(devices=devices)
    where = f"inventory {str(chosen)!r}"
    if not chosen.is_file():
        raise UserError(f"{where} does not exist; copy configs/devices.example.yaml and edit it")
    try:
        raw = load_bounded_yaml(chosen.read_text(encoding="utf-8"), str(chosen))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{where} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{where} is not valid YAML{at}; fix the syntax") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a mapping with a 'devices:' list")
    top = _validate(_InventoryFile, raw, where)
    defaults = top.defaults
    base_dir = chosen.parent
    ssh_config = _load_ssh_config(top.ssh_config, base_dir, where)
    sources = {LOCAL_DEVICE: "built-in"}
    for index, entry_raw in enumerate(top.devices):
        label = _entry_label(entry_raw, index)
        if not isinstance(entry_raw, dict):
            raise UserError(f"{where}: {label} must be a mapping of fields")
        entry = _validate(_DeviceEntry, entry_raw, f"{where}: {label}")
        if entry.name in devices:
            what = (
                "is reserved for the built-in device"
                if entry.name == LOCAL_DEVICE
                else "is used twice"
            )
            raise UserError(f"{where}: {label}: field 'name': {entry.name!r} {what}")
        devices[entry.name] = _resolve(
            entry, defaults, top.known_hosts, ssh_config, base_dir, f"{where}: {label}"
        )
        sources[entry.name] = str(chosen)
    return Inventory(devices=devices, path=chosen, sources=sources)


def _entry_label(entry: Any, index: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"device {name!r}" if isinstance(name, str) else f"device #{index + 1}"


def _validate(model: type[BaseModel], raw: dict[str, Any], where: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            nested = model.model_fields.get(str(error["loc"][0])) if len(error["loc"]) > 1 else None
            if (
                nested is not None
                and isinstance(nested.annotation, type)
                and issubclass(nested.annotation, BaseModel)
            ):
                model = nested.annotation
            known = list(model.model_fields)
            field_name = str(error["loc"][-1])
            hint = difflib.get_close_matches(field_name, known, n=1)
            maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UserError(
                f"{where}: unknown field {echo(loc)}{maybe}; known fields: {', '.join(known)}"
            ) from None
        if error["type"] == "missing":
            raise UserError(f"{where}: field {loc!r} is required") from None
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch":
            message = _PATTERN_RULES.get(str(error["loc"][-1]), message)
        raise UserError(
            f"{where}: field {loc!r}: {message} (got {echo(error.get('input'))})"
        ) from None


_PATTERN_RULES = {
    "name": "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    "user": "use letters, digits, '.', '_' or '-'",
    "python": "give one interpreter path on one line",
    "spool": "give one directory path on one line",
}


def _load_ssh_config(value: str | None, base_dir: Path, where: str) -> SshConfig | None:
    """The inventory's ssh_config (or ~/.ssh/config); read without running any command."""
    from edgeprune.fleet.ssh_config import SshConfig

    path = _local_path(value, base_dir) if value else os.path.expanduser("~/.ssh/config")
    if not os.path.isfile(path):
        if value:
            raise UserError(f"{where}: field 'ssh_config': {path!r} does not exist")
        return None
    return SshConfig.from_path(path)


def _local_path(value: str, base_dir: Path) -> str:
    """A host-side path from the inventory: `~` expanded, relative to the inventory's folder."""
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else (base_dir / path))


def _resolve(
    entry: _DeviceEntry,
    defaults: _DeviceFields,
    known_hosts: str | None,
    ssh_config: SshConfig | None,
    base_dir: Path,
    where: str,
) -> Device:
    def pick(name: str) -> Any:
        value = getattr(entry, name)
        return value if value is not None else getattr(defaults, name)

    kind = pick("kind") or "linux"
    if kind == LOCAL_DEVICE:
        raise UserError(
            f"{where}: field 'kind': 'local' is the built-in device {LOCAL_DEVICE!r}; "
            "use linux for a host reached over SSH"
        )
    host = pick("host")
    if not host:
        raise UserError(
            f"{where}: field 'host' is required (a hostname, an address or a ~/.ssh/config Host)"
        )
    resolved = (
        ssh_config.resolve(host, user=pick("user"), port=pick("port")) if ssh_config else None
    )
    identity = pick("identity_file")
    if identity:
        identity_files: tuple[str, ...] = (_local_path(identity, base_dir),)
    else:
        identity_files = (
            tuple(ssh_config.identity_paths(resolved)) if ssh_config and resolved else ()
        )
    known = entry.known_hosts or known_hosts or defaults.known_hosts
    known_also: tuple[str, ...] = ()
    if known:
        known_path = _local_path(known, base_dir)
    else:
        user_files = resolved.known_hosts if resolved else list(DEFAULT_USER_KNOWN_HOSTS)
        known_path, *rest = (os.path.expanduser(p) for p in user_files)
        known_also = tuple(rest)
    global_config = resolved.global_known_hosts if resolved else []
    global_files = tuple(os.path.expanduser(p) for p in global_config) or DEFAULT_GLOBAL_KNOWN_HOSTS
    connect_timeout = pick("connect_timeout") or (resolved and resolved.connect_timeout) or 10.0
    jumps: tuple[Device, ...] = ()
    if ssh_config is not None and resolved is not None:
        if not is_host_name(resolved.hostname):
            raise UserError(
                f"{where}: host {host!r} has HostName {resolved.hostname!r} in ssh config "
                f"{ssh_config.path!r}, which is not a host name or IP address; fix that HostName"
            )
        if resolved.proxy_command:
            raise UserError(
                f"{where}: host {host!r} uses ProxyCommand in ssh config {ssh_config.path!r}, "
                "which edgeprune does not run; use ProxyJump instead"
            )
        jumps = jump_chain(
            ssh_config, resolved, entry.name, known_path if known else None, connect_timeout, where
        )
    return Device(
        name=entry.name,
        kind=kind,
        tags=tuple(pick("tags") or ()),
        host=host,
        hostname=resolved.hostname if resolved else host,
        port=resolved.port if resolved else (pick("port") or 22),
        user=resolved.user if resolved else (pick("user") or getpass.getuser()),
        identity_files=identity_files,
        known_hosts=known_path,
        known_hosts_also=known_also,
        global_known_hosts=global_files,
        python=pick("python") or DEFAULT_PYTHON,
        spool=pick("spool") or DEFAULT_SPOOL,
        connect_timeout=connect_timeout,
        command_timeout=pick("command_timeout") or 600.0,
        retries=pick("retries") if pick("retries") is not None else 2,
        jumps=jumps,
    )
