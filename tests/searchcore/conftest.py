import pytest
import torch

from tests.searchcore import toy_space


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Tests run on 2-core CI machines, often in parallel: one thread per test process."""
    torch.set_num_threads(1)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Collect with the toy space registered, so tests parametrised over the registries cover it."""
    with toy_space.registered():
        return (yield)


@pytest.fixture(autouse=True)
def _toy_space_registered():
    """Run with the toy space registered, and leave the registries as they were for other tests."""
    with toy_space.registered():
        yield
