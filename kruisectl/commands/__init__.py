"""One module per kruisectl command group; each exposes COMMANDS."""

from __future__ import annotations

import functools
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Install:
    """Where a command reads an install: the kubekit client, the objects' names, and which names
    the user chose (an object missing under a chosen name is an error, not an upstream default)."""

    client: object  # kubekit.api.Client
    names: object  # inventory.Names
    chosen: frozenset


def open_install(target, names: dict) -> Install:
    """The opening status, doctor and webhook check share: one pooled client, the names."""
    from .. import inventory as inv

    return Install(target.client(pool_size=inv.PARALLEL_READS), inv.Names(namespace=target.namespace, **names),
                   frozenset(explicit(names)))


def read_install(install: Install, target, extended: bool = False):
    """One read of the install; exit 2 (one line) when nothing can be said or the namespace or a
    chosen name finds nothing, naming where an install was found instead."""
    from .. import inventory as inv
    from ..errors import KruisectlError

    inventory = inv.collect(install.client, install.names, timeout=target.request_timeout, extended=extended)
    fatal = inventory.fatal()
    if fatal:
        raise KruisectlError(fatal)
    inv.ensure_target(install.client, inventory, install.chosen, target.request_timeout)
    return inventory
