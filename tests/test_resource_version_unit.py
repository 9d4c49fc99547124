"""``kubekit.api.resource_version``: the one reading of ``metadata.resourceVersion`` as a number
(the hostlet's watch catching up with its own status write, the WorkloadSpread webhook choosing
the newer of two reads)."""

import pytest

from kubekit.api import resource_version


@pytest.mark.parametrize("obj, expected", [
    ({"metadata": {"resourceVersion": "1234"}}, 1234),
    ({"metadata": {"resourceVersion": "0"}}, 0),
    ({"metadata": {"resourceVersion": ""}}, None),
    ({"metadata": {"resourceVersion": "abc"}}, None),
    ({"metadata": {}}, None),
    ({"metadata": None}, None),
    ({}, None),
    (None, None),
])
def test_resource_version(obj, expected):
    assert resource_version(obj) == expected
