"""SavedModel export of zoo models (trunks for transfer, finetuned models for serving).

Exported models load with TensorFlow alone; nothing here is needed to use them.
"""
