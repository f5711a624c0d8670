"""Command-line programs (absl binaries), installed as commands: `zoo-train`,
`zoo-export`, `zoo-evaluate`, `zoo-sweep`, `zoo-visualize`, `zoo-make-synthetic`
(`tools/*.py` run the same programs from a checkout)."""

import os

# Every command imports this package first, before TensorFlow: its C++ start-up chatter
# stays quiet unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
