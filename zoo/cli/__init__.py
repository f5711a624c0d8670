"""Command-line programs (absl binaries): `zoo-train`, `zoo-export`."""
