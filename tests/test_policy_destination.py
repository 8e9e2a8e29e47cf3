"""`to.operation.ports`/`notPorts` and the `destination.port`/`destination.ip`
keys through Envoy: the connection's local address, as Envoy's RBAC reads it
(`destination.address`; in a sidecar, the original destination)."""

import pytest
import requests

from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.ports import free_port

ISSUER = "https://issuer-destination.test"
RBAC = "RBAC: access denied"


@pytest.fixture(scope="module")
def envoy(module_stack):
    server = module_stack.jwks_server({"keys": []})
    port_a, port_b = free_port(), free_port()

    def listener(name: str, policies: list[dict], port: int | None = None) -> Listener:
        config = plugin_config(rule(ISSUER, server), servers=(server,), allowMissing=True,
                               authorizationPolicies=policies)
        return Listener(name, config, port=port or free_port())

    only_a = [{"rules": [{"to": [{"operation": {"ports": [str(port_a)]}}]}]}]
    not_a = [{"rules": [{"to": [{"operation": {"notPorts": [str(port_a)]}}]}]}]
    deny_b_on_loopback = [{"action": "DENY", "rules": [{"when": [
        {"key": "destination.port", "values": [str(port_b)]},
        {"key": "destination.ip", "values": ["127.0.0.0/8"]}]}]}]
    return module_stack.envoy(
        listener("only-a", only_a, port_a),
        listener("only-a-elsewhere", only_a),
        listener("not-a", not_a),
        listener("deny-b", deny_b_on_loopback, port_b),
        listener("deny-b-elsewhere", deny_b_on_loopback),
        servers=(server,),
    )


def status(envoy, listener: str) -> tuple[int, str]:
    response = requests.get(envoy.url(listener) + "/", timeout=10)
    return response.status_code, response.text


def test_ports_match_the_connections_local_port(envoy):
    assert status(envoy, "only-a")[0] == 200
    # No credential could help: Istio's 403.
    assert status(envoy, "only-a-elsewhere") == (403, RBAC)
    assert status(envoy, "not-a")[0] == 200


def test_destination_port_and_ip_conditions(envoy):
    assert status(envoy, "deny-b") == (403, RBAC)
    assert status(envoy, "deny-b-elsewhere")[0] == 200
