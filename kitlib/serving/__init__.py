"""Serving: TF Serving's REST and gRPC formats on loopback, versioned exports, TFLite."""
