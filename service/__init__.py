"""The post lifecycle service.

Importing this package puts ``generated/`` (the code grpcio-tools makes from
``protos/``) on the import path, the one place that does so, so that
``from posts.v1 import posts_pb2`` works everywhere.
"""

import pathlib
import sys

_GENERATED = str(pathlib.Path(__file__).resolve().parent.parent / "generated")
if _GENERATED not in sys.path:
    sys.path.insert(0, _GENERATED)
