"""Reading saved dataclasses back: one policy for every ``from_dict`` in TicketTune.

A file written by a newer TicketTune may carry keys this version does not know: they are
ignored (with a logged note), so an old app can still open a new run. A key this version needs
and the file lacks cannot be guessed: that is a ConfigError naming what is missing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from core.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")


def known_fields(cls: type, data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The entries of ``data`` that are fields of the dataclass ``cls``, checked.

    Unknown keys are dropped and logged; missing required fields raise ConfigError.
    ``what`` names the thing in analyst words ("the saved model settings").
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_capital(what)} cannot be read: expected a JSON object.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(key) for key in data if key not in fields)
    if unknown:
        log.info("Ignoring %s in %s (written by a newer TicketTune?)", ", ".join(unknown), what)
    missing = [
        name
        for name, f in fields.items()
        if f.init
        and name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"{_capital(what)} cannot be read: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing. The file may be damaged or come "
            "from a different TicketTune version."
        )
    return {key: value for key, value in data.items() if key in fields and fields[key].init}


def from_known_fields(cls: type[T], data: Mapping[str, Any], what: str) -> T:
    """``cls(**data)`` under the policy above (see :func:`known_fields`)."""
    return cls(**known_fields(cls, data, what))


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
