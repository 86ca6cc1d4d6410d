"""Code the user named on purpose (`--metric FILE.py:fn`, `--custom-objects pkg.module`).

Nothing from a model, recipe value or data file runs unless the user named the code; this is
the one place that imports it, so every such import is explicit and its errors are one line.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from edgeprune.errors import UserError

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_module(spec: str, param: str) -> ModuleType:
    """Import `spec`: a `.py` file path or a dotted module name on sys.path."""
    text = str(spec).strip()
    if not text:
        raise UserError(f"{param} is empty; give FILE.py or pkg.module", params=(param,))
    if text.endswith(".py") or "/" in text or "\\" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise UserError(f"{param}: {text!r} is not a file", params=(param,))
        if path.suffix != ".py":
            raise UserError(f"{param}: {text!r} is not a .py file", params=(param,))
        name = f"edgeprune_user_{abs(hash(str(path.resolve())))}"
        if name in sys.modules:
            return sys.modules[name]
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UserError(f"{param}: {text!r} cannot be imported", params=(param,))
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise UserError(
                f"{param}: importing {text!r} failed: {type(exc).__name__}: {_first_line(exc)}",
                params=(param,),
            ) from None
        return module
    if not _MODULE.match(text):
        raise UserError(
            f"{param}: {text!r} is neither a .py file nor a dotted module name", params=(param,)
        )
    try:
        return importlib.import_module(text)
    except ModuleNotFoundError as exc:
        raise UserError(
            f"{param}: module {exc.name or text!r} is not installed or not on PYTHONPATH",
            params=(param,),
        ) from None
    except Exception as exc:
        raise UserError(
            f"{param}: importing {text!r} failed: {type(exc).__name__}: {_first_line(exc)}",
            params=(param,),
        ) from None


def load_callable(spec: str, param: str) -> Any:
    """The function `FILE.py:fn` or `pkg.module:fn` names."""
    text = str(spec).strip()
    module_part, sep, name = text.rpartition(":")
    if not sep or not module_part or not _NAME.match(name):
        raise UserError(
            f"{param}: {text!r} must be FILE.py:function or pkg.module:function", params=(param,)
        )
    module = load_module(module_part, param)
    target = getattr(module, name, None)
    if target is None:
        raise UserError(f"{param}: {module_part!r} has no {name!r}", params=(param,))
    if not callable(target):
        raise UserError(f"{param}: {module_part}:{name} is not callable", params=(param,))
    return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""
