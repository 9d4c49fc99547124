"""One module per kruisectl command group; each exposes COMMANDS."""

from __future__ import annotations

import functools

import click

from kubekit import kruise


_NAME_OPTIONS = {
    "lease": ("--lease-name", kruise.LEASE),
    "deployment": ("--deployment", kruise.DEPLOYMENT),
    "service": ("--service", kruise.SERVICE),
    "secret": ("--secret", kruise.SECRET),
    "mutating": ("--mutating-webhook-configuration", kruise.MUTATING_CONFIGURATION),
    "validating": ("--validating-webhook-configuration", kruise.VALIDATING_CONFIGURATION),
}


def name_options(*fields: str):
    """Options overriding upstream OpenKruise's object names; the command receives them as one
    ``names: dict`` argument (field -> name), ready for ``inventory.Names(namespace=..., **names)``."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            names = {field: kwargs.pop(field) for field in fields}
            return func(*args, names=names, **kwargs)

        for field in reversed(fields):
            flag, default = _NAME_OPTIONS[field]
            wrapper = click.option(flag, field, default=default, show_default=True, metavar="NAME")(wrapper)
        return wrapper

    return decorate


def explicit(names: dict) -> set[str]:
    """The names the user set to something other than upstream's default."""
    return {field for field, value in names.items() if value != _NAME_OPTIONS[field][1]}
