"""The web process validates, hashes, draws and compares cells without importing torch."""

import subprocess
import sys

import pytest

TORCH_FREE = [
    "searchcore.genotype", "searchcore.spaces", "searchcore.strategies", "searchcore.proxy", "searchcore.data",
    "searchcore.compare", "searchcore.render", "searchcore.known", "searchcore.models", "searchcore.results",
    "searchcore.runner",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_proxy_config_validates_without_torch():
    code = ("import sys; from searchcore.proxy import ProxyConfig; "
            "ProxyConfig.from_dict({'dataset': 'digits', 'epochs': 2, 'device': 'cuda:1'}); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_cells_f_and_base_filters_come_without_torch():
    code = ("import sys; from searchcore.known import get_known; from searchcore.proxy import ProxyConfig; "
            "widths = ProxyConfig(base_filters=36).network_widths(get_known('darts-v2')); "
            "assert (widths.filters, widths.base_filters) == (576, 36); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
