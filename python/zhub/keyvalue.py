"""``zhub.keyvalue``: where PyDistributed programs look for ``KeyValueClient`` and
``KeyValueStore`` (``pydistributed.keyvalue``); see ``zhub.compat``."""

from .compat import KeyValueClient, KeyValueStore

__all__ = ["KeyValueClient", "KeyValueStore"]
