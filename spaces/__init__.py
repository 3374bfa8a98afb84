"""Built-in search spaces, registered by name (imported lazily)."""

from nas_core.registry import SPACES

SPACES.register("binary_width", "spaces.width:BinaryWidthSpace")
SPACES.register("nasbench201", "spaces.nasbench201:NasBench201Space")
