"""The Docker suite (`make test-docker`): the Compose stack built and run on a real Docker
engine, each test through the containers. A missing engine fails the session with what to
install: these tests never skip."""

import pytest

from proving_ground.stacks.docker import DockerStack
from proving_ground.stacks.tls import TlsStack


@pytest.fixture(scope="session")
def stack():
    """The development stack (docker-compose.yml) from a copy of the repository, owned by
    whoever runs the tests (root in CI: not uid 1000, the image's default user)."""
    with DockerStack() as running:
        yield running


@pytest.fixture(scope="session")
def tls_stack():
    """The production stack with HTTPS (docker-compose.tls.yml), its certbot at Pebble,
    once certbot's first certificate is served; nginx's limits per address as shipped."""
    with TlsStack(address_limits=True) as running:
        running.wait_for_certificate()
        yield running
