"""The HTTP layer: request/response models, routers, and the one error mapping."""
