"""Pure planning: strategy arithmetic and the surge placement simulation."""

from __future__ import annotations

import pytest

from kruisectl.capacity import effective_numbers, surge_fit

ZONE = "topology.kubernetes.io/zone"


@pytest.mark.parametrize("replicas,surge,unavailable,expected", [
    (3, "100%", 0, (3, 0)),
    (3, "25%", "25%", (1, 0)),      # surge rounds up, unavailable rounds down
    (10, "25%", "25%", (3, 2)),
    (4, "50%", "50%", (2, 2)),
    (3, 1, "0%", (1, 0)),
    (1, "0%", "10%", (0, 1)),       # 0/0 after rounding: the controller still lets one go
    (5, None, None, (2, 1)),        # Kubernetes defaults 25%/25%
    (0, "100%", 0, (0, 0)),         # 0 replicas: nothing to surge, nothing to take down (MaxUnavailable)
    (3, 0, 4, (0, 3)),              # maxUnavailable above the replicas: clamped to them
    (3, 1, "100%", (1, 3)),
])
def test_effective_numbers_round_like_the_deployment_controller(replicas, surge, unavailable, expected):
    assert effective_numbers(replicas, surge, unavailable) == expected


@pytest.mark.parametrize("surge,unavailable,message", [
    (0, 0, "may not both be 0"),
    ("0%", "0%", "may not both be 0"),
    (0, "0%", "may not both be 0"),
    (1, "101%", "greater than 100%"),
    ("abc", 1, "integer or a percentage"),
    ("10.5%", 1, "integer or a percentage"),
    (-1, 1, "greater than or equal to 0"),
    ("-5%", 1, "integer or a percentage"),
])
def test_invalid_strategies_are_rejected_with_a_clear_message(surge, unavailable, message):
    with pytest.raises(ValueError, match=message):
        effective_numbers(3, surge, unavailable)


def _node(name, zone=None, cpu="4", pods="110", taints=None, unschedulable=False, labels=None):
    node_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    if zone:
        node_labels[ZONE] = zone
    return {"metadata": {"name": name, "labels": node_labels},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": pods}}}


def _deployment(replicas=3, surge="100%", unavailable=0, cpu="1", host_network=False, spread=None,
                node_selector=None, tolerations=None):
    container = {"name": "manager", "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}},
                 "ports": [{"containerPort": 9876}]}
    spec = {"containers": [container], "hostNetwork": host_network}
    if spread:
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": spread,
                                              "labelSelector": {"matchLabels": {"app": "m"}},
                                              "matchLabelKeys": ["pod-template-hash"]}]
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": "m", "namespace": "ns"},
            "spec": {"replicas": replicas,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     "template": {"metadata": {"labels": {"app": "m"}}, "spec": spec}}}


def _pod(node, cpu="1", host_network=False, labels=None):
    container = {"name": "c", "resources": {"requests": {"cpu": cpu}}, "ports": [{"containerPort": 9876}]}
    return {"metadata": {"name": f"p-{node}", "namespace": "ns", "labels": labels or {"app": "m"}},
            "spec": {"nodeName": node, "hostNetwork": host_network, "containers": [container]},
            "status": {"phase": "Running"}}


def test_everything_fits_on_an_idle_cluster():
    fit = surge_fit(_deployment(), [_node("a"), _node("b")], [])
    assert (fit.wanted, fit.fits, fit.recommended_max_surge, fit.ok) == (3, 3, 3, True)


def test_cpu_allocatable_minus_requests_limits_the_surge():
    nodes = [_node("a", cpu="2"), _node("b", cpu="2")]
    pods = [_pod("a", cpu="1"), _pod("b", cpu="1500m")]
    fit = surge_fit(_deployment(), nodes, pods)
    assert (fit.wanted, fit.fits, fit.recommended_max_surge) == (3, 1, 1)
    assert "Insufficient cpu" in fit.reasons[0]


def test_host_network_ports_allow_one_manager_per_node():
    nodes = [_node(n) for n in "abcd"]
    pods = [_pod(n, cpu="0", host_network=True) for n in "abc"]
    fit = surge_fit(_deployment(host_network=True, cpu="0"), nodes, pods)
    assert fit.fits == 1 and "free ports" in fit.reasons[0]


def test_taints_unschedulable_and_node_selector_exclude_nodes():
    nodes = [_node("a", taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]),
             _node("b", unschedulable=True), _node("c", labels={"role": "infra"}), _node("d")]
    fit = surge_fit(_deployment(replicas=2, cpu="3", node_selector={"role": "infra"}), nodes, [])
    assert (fit.wanted, fit.fits) == (2, 1)
    tolerated = surge_fit(_deployment(replicas=2, cpu="3", tolerations=[{"key": "dedicated", "operator": "Exists"}]),
                          nodes, [])
    assert tolerated.fits == 2  # a (tolerated) and d; b unschedulable, c has room too but only 2 wanted


def test_do_not_schedule_spread_needs_zone_labels_and_balances_domains():
    unlabelled = [_node(n, cpu="8") for n in "abc"]
    assert surge_fit(_deployment(spread="DoNotSchedule"), unlabelled, []).fits == 0
    assert surge_fit(_deployment(spread="ScheduleAnyway"), unlabelled, []).fits == 3
    # z1 holds one pod; with maxSkew 1, z2 may then take two, and a fourth would skew by 2.
    nodes = [_node("a", zone="z1", cpu="1"), _node("b", zone="z2", cpu="8")]
    fit = surge_fit(_deployment(replicas=4, spread="DoNotSchedule"), nodes, [])
    assert (fit.wanted, fit.fits, fit.recommended_max_surge) == (4, 3, 3)
    assert "topology spread" in fit.reasons[0]


def test_snake_case_client_objects_are_read_too():
    deployment = {"metadata": {"name": "m", "namespace": "ns"},
                  "spec": {"replicas": 2, "strategy": {"type": "RollingUpdate",
                                                       "rolling_update": {"max_surge": "100%", "max_unavailable": 0}},
                           "template": {"metadata": {"labels": {}}, "spec": {"host_network": True, "containers": [
                               {"name": "c", "ports": [{"container_port": 80}]}]}}}}
    nodes = [_node("a"), _node("b"), _node("c")]
    pods = [{"metadata": {"name": "x", "namespace": "ns"}, "spec": {"node_name": "a", "host_network": True,
             "containers": [{"name": "c", "ports": [{"container_port": 80}]}]}, "status": {"phase": "Running"}}]
    assert surge_fit(deployment, nodes, pods).fits == 2


def test_recreate_strategy_needs_no_surge():
    deployment = _deployment()
    deployment["spec"]["strategy"] = {"type": "Recreate"}
    assert surge_fit(deployment, [], []).wanted == 0
