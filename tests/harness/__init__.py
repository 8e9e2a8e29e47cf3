"""End-to-end test harness: local servers, an Envoy runner and JWT minting.

Everything here talks to 127.0.0.1 only and is bounded in time, so a test
that uses it can neither hang nor leak a process past its own teardown.
"""
