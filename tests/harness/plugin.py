"""Plugin configuration builders: jwtRules pointing at harness JWKS servers.

The filter reaches a JWKS server through an Envoy cluster named in the
plugin's `clusters` map (URL authority -> cluster); `envoy_clusters()` gives
the matching clusters for the bootstrap.
"""

from .jwks_server import JwksServer


def jwks_cluster_name(server: JwksServer) -> str:
    return f"jwks_{server.port}"


def rule(issuer: str, server: JwksServer | None = None, **fields) -> dict:
    """A jwtRules entry; with `server` its jwksUri points there. Extra fields
    use the config's own camelCase names (audiences=..., fromHeaders=...)."""
    entry = {"issuer": issuer}
    if server is not None:
        entry["jwksUri"] = server.jwks_uri
    entry.update(fields)
    return entry


def plugin_config(*rules: dict, servers: tuple[JwksServer, ...] = (), **top_level) -> dict:
    """The plugin JSON: the rules, a clusters entry for each server, and any
    top-level field (clockSkewSeconds=..., jwksCacheDuration=...)."""
    config = {"jwtRules": list(rules)}
    if servers:
        config["clusters"] = {s.authority: jwks_cluster_name(s) for s in servers}
    config.update(top_level)
    return config


def envoy_clusters(*servers: JwksServer) -> dict[str, int]:
    """Bootstrap clusters (name -> port) for the servers' dispatch calls."""
    return {jwks_cluster_name(s): s.port for s in servers}
