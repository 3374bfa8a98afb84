"""The README's strategy-plugin example is real code: it runs and passes the conformance suite."""

import re
import sys
from pathlib import Path

import pytest

from nas_core.testing import StrategyConformance

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module", autouse=True)
def readme_plugin(tmp_path_factory):
    block = re.search(r"```python\n# my_strategies.py\n(.*?)```", README.read_text(), re.S)
    assert block, "README lost its plugin example"
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "my_strategies.py").write_text(block.group(1))
    sys.path.insert(0, str(folder))
    yield
    sys.path.remove(str(folder))
    sys.modules.pop("my_strategies", None)


class TestReadmeGreedy(StrategyConformance):
    strategy_path = "my_strategies:Greedy"
    strategy_args = {"budget": 400}
