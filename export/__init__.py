"""SavedModel export of zoo models (trunks for transfer, task models for TF Serving).

Exported models load with TensorFlow alone; nothing here is needed to use them.
"""

from export.savedmodel import (
    export_model,
    export_trunk,
    next_version,
    set_serving,
    write_models_config,
)

__all__ = ["export_model", "export_trunk", "next_version", "set_serving", "write_models_config"]
