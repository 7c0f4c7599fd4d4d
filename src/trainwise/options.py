"""Options for a named thing (a dataset, model, loss, optimizer, scheduler, or a user's class) checked
against its own signature: unknown keys, values of the wrong type where its hints say, and required ones
left out, each a ConfigError naming the TOML key ("section.key: problem").

config validates the TOML sections with these; models checks an import-path model's options before
calling it (importing runs the user's code, so that check waits until the model is built).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from trainwise.errors import ConfigError


def toml_key(key: str) -> str:
    """A key as TOML writes it: bare when it can be (A-Z a-z 0-9 _ -), else quoted, so that an empty key or
    one holding a dot or a space is still visible and unambiguous in a dotted path."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    # escaped as in a TOML string; also what print would show as a line break (\x85, \u2028) or not at all
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else _escape(c) for c in key) + '"'


def _escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    return f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}"


def did_you_mean(key: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _hints(allowed: Mapping[str, inspect.Parameter], typed: Callable[..., Any] | None) -> dict[str, Any]:
    """Type hints of the target's options: from the signature, with string annotations resolved via `typed`."""
    params = dict(allowed)
    if typed is not None:
        # unresolvable hints (forward references to missing names): check the names only
        with contextlib.suppress(Exception):
            params.update(inspect.signature(typed, eval_str=True).parameters)
    return {
        k: p.annotation
        for k, p in params.items()
        if p.annotation is not inspect.Parameter.empty and not isinstance(p.annotation, str)
    }


def check_options(
    section: str,
    own_keys: Iterable[str],
    given: Mapping[str, Any],
    allowed: Mapping[str, inspect.Parameter],
    target: str,
    typed: Callable[..., Any] | None = None,
) -> None:
    """Unknown keys and, where the target has usable type hints, wrong types become ConfigErrors."""
    hints = _hints(allowed, typed)
    own = list(own_keys)
    options = [k for k in allowed if not k.startswith("_") and k not in own]
    for key, value in given.items():
        if key not in allowed:
            takes = f"{target} takes {', '.join(options)}" if options else f"{target} takes no options"
            raise ConfigError(
                f"{section}.{toml_key(key)}: unknown key{did_you_mean(key, [*options, *own])}; "
                f"{takes}, and [{section}] takes {', '.join(own)}"
            )
        hint = hints.get(key)
        if hint is None:
            continue
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(hint)
        except Exception:  # types pydantic cannot check (torch.Tensor, ...): left to the target
            continue
        try:
            adapter.validate_python(value, strict=True)
        except ValidationError as exc:
            # TOML has arrays but no tuples: accept a list where a tuple is expected
            if isinstance(value, list) and _valid(adapter, tuple(value)):
                continue
            raise ConfigError(f"{section}.{key}: {pydantic_message(exc.errors()[0])} (got {value!r})") from None


def check_factory_options(
    section: str, own_keys: Iterable[str], given: Mapping[str, Any], factory: Callable[..., Any], target: str
) -> None:
    """Options for a user's callable (an import-path model), checked against its own signature before it is
    called: unknown keys (unless it takes **kwargs), values of the wrong type (where its hints say), and
    required arguments left out, each a ConfigError naming the key."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read (some builtins): the call itself decides
        return
    by_keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    allowed = {k: p for k, p in params.items() if p.kind in by_keyword}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed.update({k: inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY) for k in given if k not in allowed})
    check_options(section, own_keys, given, allowed, target, factory)
    missing = [k for k, p in allowed.items() if p.default is inspect.Parameter.empty and k not in given]
    if missing:
        raise ConfigError(
            f"{', '.join(f'{section}.{k}' for k in missing)}: {target.removeprefix(f'{section} ')} rejected its "
            f"options {sorted(given)}: it requires {', '.join(missing)}; add them under [{section}]"
        )


def _valid(adapter: TypeAdapter[Any], value: Any) -> bool:
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


def pydantic_message(error: Mapping[str, Any]) -> str:
    """pydantic's wording in user terms: 'Input should be greater than 0' reads 'must be greater than 0'."""
    kind, msg = error["type"], str(error["msg"])
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table"
    if kind == "sequence_str" or (kind == "is_instance_of" and "Sequence" in msg):
        return "must be a list"
    msg = msg.removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        msg = "must be " + msg.removeprefix("Input should be ")
    return msg
