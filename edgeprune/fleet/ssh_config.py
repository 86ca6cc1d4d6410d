"""Reading an OpenSSH client config as `ssh -G` does, without ever running a command.

paramiko's SSHConfig runs `Match exec` commands while it parses and ignores `Include`,
`ProxyJump` and `ProxyCommand`. This reader follows OpenSSH's rules for what edgeprune uses
(first value wins, IdentityFile accumulates, Host/Match blocks, `Match final`'s second pass,
Include with globs and ~/.ssh-relative paths) and treats `Match exec` as not matching:
nothing in a config file is ever executed. `ProxyCommand` is reported, so the caller can
refuse it.
"""

from __future__ import annotations

import fnmatch
import getpass
import glob
import hashlib
import os
import re
import shlex
import socket
from dataclasses import dataclass, field

from edgeprune.errors import UserError

_MAX_INCLUDE_DEPTH = 16
_MAX_FILE_BYTES = 1024 * 1024
_KEYWORD = re.compile(r"([^\s=]+)\s*=?\s*(.*)")
DEFAULT_IDENTITY_FILES = (
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
)
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
_MULTI = {"identityfile"}
_PROXY = {"proxyjump", "proxycommand"}


@dataclass(frozen=True)
class _Line:
    keyword: str
    args: tuple[str, ...]
    where: str


@dataclass
class _Pass:
    """One reading of the config: the name Host lines match, and whether it is the final one."""

    host: str
    original: str
    final: bool = False
    want_final: bool = False


@dataclass
class Resolved:
    """One host as `ssh -G` sees it; `identity_files` and `known_hosts` are as written."""

    host: str
    hostname: str
    port: int
    user: str
    identity_files: list[str] = field(default_factory=list)
    known_hosts: list[str] = field(default_factory=list)
    global_known_hosts: list[str] = field(default_factory=list)
    proxy_jump: str = ""
    proxy_command: str = ""
    connect_timeout: float | None = None


class SshConfig:
    """An ssh_config file (and its Includes), each file parsed once; `resolve(host)` per host."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._parsed: dict[str, list[_Line]] = {}

    @classmethod
    def from_path(cls, path: str) -> SshConfig:
        config = cls(path)
        config._read(path)  # fail on a missing or malformed file now, not at resolve time
        return config

    def resolve(self, host: str, user: str | None = None, port: int | None = None) -> Resolved:
        """The options for `host`, as `ssh -G [-l user] [-p port] -F path host` prints them."""
        options: dict[str, list[str]] = {}
        if user:
            options["user"] = [user]
        if port:
            options["port"] = [str(port)]
        first = _Pass(host=host, original=host)
        self._apply(self.path, first, options, True, 0)
        hostname = _expand(options.get("hostname", ["%h"])[0], {"h": host}, self.path).lower()
        if first.want_final:  # `Match final`: ssh reads the config again for the real name
            options["hostname"] = [hostname.replace("%", "%%")]
            self._apply(self.path, _Pass(hostname, host, final=True), options, True, 0)
        local_user = getpass.getuser()
        remote_user = options.get("user", [local_user])[0]
        port_value = options.get("port", ["22"])[0]
        try:
            port_number = int(port_value)
        except ValueError:
            raise UserError(
                f"ssh config {self.path!r}: Port {port_value!r} is not a number"
            ) from None
        if not 1 <= port_number <= 65535:
            raise UserError(f"ssh config {self.path!r}: Port {port_number} is out of range")
        tokens = _tokens(hostname, host, port_number, remote_user)
        known = options.get("userknownhostsfile") or list(DEFAULT_KNOWN_HOSTS)
        known_global = options.get("globalknownhostsfile") or list(DEFAULT_GLOBAL_KNOWN_HOSTS)
        timeout = options.get("connecttimeout", [""])[0]
        proxy = options.get("proxy", ["", ""])
        return Resolved(
            host=host,
            hostname=hostname,
            port=port_number,
            user=remote_user,
            identity_files=list(options.get("identityfile", [])),
            known_hosts=[expand_path(p, tokens, self.path) for p in known],
            global_known_hosts=known_global,  # ssh expands neither ~ nor tokens here
            proxy_jump=proxy[1] if proxy[0] == "proxyjump" and proxy[1] != "none" else "",
            proxy_command=proxy[1] if proxy[0] == "proxycommand" and proxy[1] != "none" else "",
            connect_timeout=float(timeout) if timeout.isdigit() else None,
        )

    def identity_paths(self, resolved: Resolved) -> list[str]:
        """The identity files with `~` and %-tokens expanded, as ssh opens them."""
        tokens = _tokens(resolved.hostname, resolved.host, resolved.port, resolved.user)
        return [expand_path(p, tokens, self.path) for p in resolved.identity_files]

    def _read(self, path: str) -> list[_Line]:
        if path not in self._parsed:
            self._parsed[path] = self._parse(path)
        return self._parsed[path]

    def _parse(self, path: str) -> list[_Line]:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(_MAX_FILE_BYTES + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"ssh config {path!r} cannot be read: {exc}") from None
        if len(text) > _MAX_FILE_BYTES:
            raise UserError(
                f"ssh config {path!r} is larger than {_MAX_FILE_BYTES // 1024} KiB; is it a config?"
            )
        lines: list[_Line] = []
        for number, raw in enumerate(text.splitlines(), 1):
            where = f"{path}:{number}"
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            found = _KEYWORD.match(stripped)
            keyword, rest = (found.group(1), found.group(2)) if found else (stripped, "")
            try:
                args = shlex.split(rest, comments=True)
            except ValueError:
                raise UserError(f"ssh config {where}: unbalanced quotes; fix the line") from None
            lines.append(_Line(keyword.lower(), tuple(args), where))
        return lines

    def _apply(
        self, path: str, state: _Pass, options: dict[str, list[str]], enabled: bool, depth: int
    ) -> None:
        if depth > _MAX_INCLUDE_DEPTH:
            raise UserError(f"ssh config {path!r}: Include nested too deeply (a loop?)")
        active = enabled
        for line in self._read(path):
            if line.keyword == "host":
                active = enabled and _host_matches(state.host, line.args)
                continue
            if line.keyword == "match":
                active = enabled and _match(state, line, options)
                continue
            if line.keyword == "include":
                for target in _include_targets(line.args):
                    self._apply(target, state, options, active, depth + 1)
                continue
            if not active or not line.args:
                continue
            if line.keyword in _MULTI:
                values = options.setdefault(line.keyword, [])
                if line.args[0] not in values:  # ssh drops a repeated identity file
                    values.append(line.args[0])
            elif line.keyword in _PROXY:
                options.setdefault("proxy", [line.keyword, " ".join(line.args)])
            elif line.keyword in ("userknownhostsfile", "globalknownhostsfile"):
                options.setdefault(line.keyword, list(line.args))
            else:
                options.setdefault(line.keyword, [line.args[0]])


def _tokens(hostname: str, host: str, port: int, user: str) -> dict[str, str]:
    """The %-tokens ssh expands in IdentityFile and UserKnownHostsFile."""
    local = socket.gethostname()
    return {
        "h": hostname,
        "n": host,
        "k": host,
        "p": str(port),
        "r": user,
        "u": getpass.getuser(),
        "d": os.path.expanduser("~"),
        "i": str(os.getuid()),
        "l": local,
        "L": local.split(".")[0],
        "C": hashlib.sha1(f"{local}{hostname}{port}{user}".encode()).hexdigest(),
    }


def _host_matches(host: str, patterns: tuple[str, ...]) -> bool:
    matched = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if fnmatch.fnmatchcase(host, pattern[1:]):
                return False
        elif fnmatch.fnmatchcase(host, pattern):
            matched = True
    return matched


def _list_matches(value: str, patterns: str, lower: bool) -> bool:
    if lower:
        value, patterns = value.lower(), patterns.lower()
    return _host_matches(value, tuple(patterns.split(",")))


def _match(state: _Pass, line: _Line, options: dict[str, list[str]]) -> bool:
    """A `Match` line's verdict; `exec` never runs and never matches (nor does `!exec`)."""
    args = list(line.args)
    if args and args[0].lower() == "all":
        return True
    result = True
    hostname = _expand(options.get("hostname", ["%h"])[0], {"h": state.host}, line.where)
    index = 0
    while index < len(args):
        word = args[index]
        negate = word.startswith("!")
        criterion = word.lstrip("!").lower()
        index += 1
        if criterion in ("all", "canonical", "final"):
            verdict = criterion == "all" or state.final
            state.want_final = state.want_final or criterion == "final"
        else:
            if index >= len(args):
                raise UserError(f"ssh config {line.where}: Match {criterion} needs an argument")
            value = args[index]
            index += 1
            if criterion == "exec":
                verdict = False  # never run a command from a config file
                negate = False  # "!exec" must not match either: nothing was evaluated
            elif criterion == "host":
                verdict = _list_matches(hostname, value, lower=True)
            elif criterion == "originalhost":
                verdict = _list_matches(state.original, value, lower=True)
            elif criterion == "user":
                remote = options.get("user", [getpass.getuser()])[0]
                verdict = _list_matches(remote, value, lower=False)
            elif criterion == "localuser":
                verdict = _list_matches(getpass.getuser(), value, lower=False)
            else:
                raise UserError(
                    f"ssh config {line.where}: Match {criterion!r} is not supported; "
                    "use Host, Match host/originalhost/user/localuser"
                )
        if verdict == negate:
            result = False
    return result


def _include_targets(args: tuple[str, ...]) -> list[str]:
    targets: list[str] = []
    for arg in args:
        if not (arg.startswith("/") or arg.startswith("~")):
            arg = "~/.ssh/" + arg
        targets.extend(sorted(glob.glob(os.path.expanduser(arg))))
    return targets


def _expand(value: str, tokens: dict[str, str], where: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(value):
        char = value[index]
        if char != "%":
            out.append(char)
            index += 1
            continue
        token = value[index + 1 : index + 2]
        if token == "%":
            out.append("%")
        elif token in tokens:
            out.append(tokens[token])
        else:
            raise UserError(f"ssh config {where}: unknown token %{token} in {value!r}")
        index += 2
    return "".join(out)


def expand_path(value: str, tokens: dict[str, str], where: str) -> str:
    """`~` and %-tokens expanded, as ssh does for IdentityFile and UserKnownHostsFile."""
    return os.path.expanduser(_expand(value, tokens, where))
