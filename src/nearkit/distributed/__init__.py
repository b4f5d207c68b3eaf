"""nearkit on Ray: sharded indexes and the distributed all-pairs k-NN graph.

Needs the optional extra: ``pip install 'nearkit[ray]'``. Call ``ray.init()``
(or connect to a cluster) before use; every shard is a Ray actor.
"""

try:
    import ray  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without ray
    raise ImportError(
        "nearkit.distributed needs Ray: pip install 'nearkit[ray]' (or pip install 'ray[data]')"
    ) from exc

from ..errors import ShardUnavailableError
from .graph import knn_graph
from .sharded import ShardedIndex

__all__ = ["ShardedIndex", "ShardUnavailableError", "knn_graph"]
