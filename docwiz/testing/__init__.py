"""Test helpers that plugin authors can reuse to prove their providers meet
the core's contracts."""
