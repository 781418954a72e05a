import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Tests run on 2-core CI machines, often in parallel: one thread per test process."""
    torch.set_num_threads(1)
