"""Command-line programs (absl binaries), installed as commands: `zoo-train`,
`zoo-export`, `zoo-evaluate`, `zoo-sweep`, `zoo-visualize`, `zoo-make-synthetic`
(`tools/*.py` run the same programs from a checkout)."""
