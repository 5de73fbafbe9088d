"""Core LivePatch: signed live patches, package reverts and rollback snapshots."""

__version__ = "0.1.0"
